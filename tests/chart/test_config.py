"""The chart's `config:` against the agent's configuration (docs/configuration.md, agent/settings.py).

values.yaml carries every agent key with its default, commented out (`##` lines describe the key
under them, `#` lines are the commented defaults), values.schema.json describes the keys a user
may set, and the config.yaml the chart renders is accepted by the agent's own loader.
"""

from __future__ import annotations

import copy
import re
import typing
from typing import Any

import pytest
import yaml

from agent import settings as agent_settings
from agent.targeting import assignment
from tests.support.chart import CHART, ROOT, all_switches_on, helm_template, one, render

CONFIG_DOC = ROOT / "docs" / "configuration.md"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"

# Keys the chart sets itself through SVCPROBE_* environment variables (which override the file):
# the downward API and the chart's own headless Service. values.yaml documents them; the schema
# rejects them under `config`.
CHART_SET = {"node_name", "pod_name", "pod_namespace", "pod_ip", "host_ip", "sharding.peers_service"}
# Where the chart's value differs from the agent's default on purpose.
CHART_CHOICES = {"log_format": "json"}
# Never read the machine's /etc/resolv.conf: a configured nameserver stops the loader from doing so.
NAMESERVER = {"dns.nameservers": ("127.0.0.1",)}


# --- Parsing ---------------------------------------------------------------------------------

def doc_keys() -> dict[str, Any]:
    """Every key in docs/configuration.md -> its default (as YAML)."""
    out = {}
    row = re.compile(r"^\| `([a-z_.]+)` \| `SVCPROBE_[A-Z_]+` \| `(.*?)` \| .* \|$")
    for line in CONFIG_DOC.read_text().splitlines():
        if m := row.match(line):
            out[m.group(1)] = yaml.safe_load(m.group(2))
    return out


def config_block_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("config:")
    block = []
    for line in lines[start + 1:]:
        if line and not line.startswith("  "):
            break
        block.append(line)
    return block


def documented_config(text: str | None = None) -> tuple[dict[str, Any], dict[str, list[str]], list[str]]:
    """values.yaml's config block with every commented default uncommented.

    Returns (config, descriptions by dotted key, problems). A description is a run of `##` lines
    directly above a key line; each key (section lines aside) must have exactly one.
    """
    plain: list[str] = []
    entries: list[tuple[int, str, str]] = []  # (indent, "desc"|"key"|"section", text)
    for line in config_block_lines(VALUES.read_text() if text is None else text):
        if not line.strip():
            plain.append("")
            entries.append((0, "blank", ""))
            continue
        indent = len(line) - len(line.lstrip())
        body = line.lstrip()
        if body.startswith("# "):  # commented out: `# key: value`, `#   ## description`
            inner = body[2:]
            indent += len(inner) - len(inner.lstrip())
            body = inner.lstrip()
        if body.startswith("##"):
            entries.append((indent, "desc", body[2:].strip()))
            continue
        assert not body.startswith("#"), f"stray comment in config: {line!r}"
        plain.append(" " * indent + body)
        key, _, value = body.partition(":")
        entries.append((indent, "section" if not value.strip() else "key", key.strip()))

    config = yaml.safe_load("\n".join(plain)) or {}
    descriptions: dict[str, list[str]] = {}
    problems: list[str] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for indent, kind, text_ in entries:
        if kind == "blank":
            if pending:
                problems.append(f"description not followed by a key: {pending}")
            pending = []
            continue
        if kind == "desc":
            pending.append(text_)
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([s for _, s in stack] + [text_])
        if kind == "section":
            stack.append((indent, text_))
            pending = []
            continue
        if not pending:
            problems.append(f"{dotted}: no `##` description directly above it")
        elif dotted in descriptions:
            problems.append(f"{dotted}: documented twice")
        descriptions[dotted] = pending
        pending = []
    return config, descriptions, problems


def leaves_of(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(leaves_of(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def without(tree: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    tree = copy.deepcopy(tree)
    for dotted in keys:
        *parents, last = dotted.split(".")
        node = tree
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    return {k: v for k, v in tree.items() if v != {}}


def schema_leaves(node: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k, v in node["properties"].items():
        if v.get("type") == "object":
            assert v.get("additionalProperties") is False, f"{prefix}{k}: unknown keys must fail"
            out.update(schema_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_schema() -> dict[str, Any]:
    schema = yaml.safe_load(SCHEMA.read_text())  # JSON is YAML
    return schema["properties"]["config"]


def load_with_agent(config: dict[str, Any]) -> agent_settings.Settings:
    s = agent_settings.load(file_data=config, overrides=NAMESERVER)
    assignment.settings_from(s)  # selectors, NAMESPACE/NAME references, the NodeLocal address
    return s


# --- values.yaml documents every key ------------------------------------------------------------

def test_the_doc_is_parsed() -> None:
    keys = doc_keys()
    assert len(keys) == len(agent_settings.leaves()) >= 40
    assert keys["dns.forms"] == ["short", "namespace", "svc", "fqdn"]
    assert keys["listen"] == "0.0.0.0:9142" and keys["pod_ip"] == ""


def test_values_document_every_key_of_the_doc_and_no_other() -> None:
    documented = set(leaves_of(documented_config()[0]))
    in_doc = set(doc_keys())
    assert not in_doc - documented, f"in docs/configuration.md, not in values.yaml: {sorted(in_doc - documented)}"
    assert not documented - in_doc, f"in values.yaml, not in docs/configuration.md: {sorted(documented - in_doc)}"


def test_every_key_has_one_description() -> None:
    _, descriptions, problems = documented_config()
    assert not problems, "\n".join(problems)
    assert set(descriptions) == set(doc_keys())
    for key, lines in descriptions.items():
        assert " ".join(lines).strip(), key


def test_commented_values_are_the_documented_defaults() -> None:
    documented = leaves_of(documented_config()[0])
    for key, default in doc_keys().items():
        want = CHART_CHOICES.get(key, default)
        assert documented[key] == want, f"{key}: values.yaml says {documented[key]!r}, default is {want!r}"


def test_only_the_chart_choices_are_active() -> None:
    """Everything but listen, log_level and log_format stays commented: an uncommented DNS key
    would stop the agent from taking what pods use from resolv.conf."""
    active = yaml.safe_load(VALUES.read_text())["config"]
    assert set(leaves_of(active)) == {"listen", "log_level", "log_format"}


def test_documented_config_loads_with_the_agent_as_its_defaults() -> None:
    config = documented_config()[0]
    config["dns"]["nameservers"] = ["127.0.0.1"]  # `[]` means "from resolv.conf": leave it out to get that
    s = load_with_agent(config)
    for leaf in agent_settings.leaves():
        value: Any = s
        for part in leaf.path:
            value = getattr(value, part)
        if leaf.key == "dns.nameservers":
            continue
        want = CHART_CHOICES.get(leaf.key, leaf.default)
        assert value == (tuple(want) if isinstance(want, list) else want), leaf.key


def test_the_parser_catches_undocumented_and_missing_keys() -> None:
    text = VALUES.read_text()
    # A key without its description.
    broken = text.replace("  ## Log level: debug, info, warning or error.\n", "")
    assert any("log_level" in p for p in documented_config(broken)[2])
    # A key dropped from values.yaml.
    broken = re.sub(r"  #   ## Most checks in flight.*\n  #   concurrency: 64\n", "", text)
    assert "scheduler.concurrency" not in leaves_of(documented_config(broken)[0])


# --- values.schema.json describes the settable keys ----------------------------------------------

def test_schema_describes_every_settable_key() -> None:
    described = schema_leaves(config_schema())
    assert config_schema().get("additionalProperties") is False
    settable = set(doc_keys()) - CHART_SET
    assert set(described) == settable, (
        f"missing: {sorted(settable - set(described))}, extra: {sorted(set(described) - settable)}")


@pytest.mark.parametrize("leaf", [leaf for leaf in agent_settings.leaves() if leaf.key not in CHART_SET],
                         ids=lambda leaf: leaf.key)
def test_schema_types_enums_and_ranges_match_the_agent(leaf: agent_settings.Leaf) -> None:
    s = schema_leaves(config_schema())[leaf.key]
    assert s.get("description"), leaf.key
    choices = leaf.meta.get("choices")
    if typing.get_origin(leaf.type) is tuple:
        assert s["type"] == "array" and s["items"]["type"] == "string"
        assert s["items"].get("enum") == (list(choices) if choices else None)
        if choices:
            assert s.get("minItems") == 1  # the agent rejects an empty list of choices
    else:
        want = {bool: "boolean", int: "integer", float: "number", str: "string"}[leaf.type]
        assert s["type"] == want
        assert s.get("enum") == (list(choices) if choices else None)
    assert s.get("minimum") == leaf.meta.get("min")
    assert s.get("maximum") == leaf.meta.get("max")
    if "default" in s:
        default = list(leaf.default) if isinstance(leaf.default, tuple) else leaf.default
        assert s["default"] == default


@pytest.mark.parametrize("config", [
    {"node_name": "n1"},                                   # set by the chart
    {"pod_ip": "10.0.0.1"},
    {"sharding": {"peers_service": "monitoring/other"}},
    {"some_future_key": 1},                                # unknown
    {"dns": {"formz": ["fqdn"]}},                          # typo
    {"dns": {"forms": ["fqdn", "bogus"]}},                 # not a form
    {"dns": {"qtypes": []}},                               # at least one
    {"dns": {"nameservers": []}},                          # empty means "none", not "default"
    {"dns": {"ndots": 16}},                                # above the maximum
    {"dns": {"attempts": 1.5}},                            # not whole
    {"scheduler": {"spread": 1.5}},
    {"metrics": {"series_budget": 50}},                    # below the minimum
    {"tcp": {"enabled": "yes"}},
    {"log_level": "verbose"},
    {"paths": {"dns_service": "kube-dns"}},                # not NAMESPACE/NAME
    {"selection": {"canaries": ["default/a/b"]}},
], ids=repr)
def test_schema_rejects_bad_config(config: dict[str, Any]) -> None:
    proc = helm_template({"config": config}, check=False)
    assert proc.returncode != 0, config
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


def test_schema_accepts_the_documented_config() -> None:
    config = without(documented_config()[0], CHART_SET)
    config["dns"]["nameservers"] = ["10.96.0.10"]
    cm = one(render({"config": config}), "ConfigMap")
    assert yaml.safe_load(cm["data"]["config.yaml"]) == config


# --- What the chart renders is what the agent accepts --------------------------------------------

def rendered_config(values: dict[str, Any]) -> dict[str, Any]:
    (cm,) = [d for d in render(values) if d["kind"] == "ConfigMap" and "config.yaml" in d["data"]]
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert isinstance(config, dict)
    return config


def test_full_values_set_every_settable_key() -> None:
    config = rendered_config(all_switches_on())
    assert set(leaves_of(config)) == set(doc_keys()) - CHART_SET


@pytest.mark.parametrize("name", ["default", "full"])
def test_rendered_config_loads_with_the_agent(name: str) -> None:
    values = yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text()) or {}
    config = rendered_config(values)
    s = load_with_agent(config)
    for key, value in leaves_of(config).items():
        got: Any = s
        for part in key.split("."):
            got = getattr(got, part)
        if key == "dns.nameservers":
            continue  # replaced by NAMESERVER
        assert got == (tuple(value) if isinstance(value, list) else value), key


def test_the_agent_loader_rejects_what_it_should() -> None:
    """The loader used above is not a rubber stamp."""
    with pytest.raises(agent_settings.ConfigError, match=re.escape("dns.forms")):
        load_with_agent({"dns": {"forms": ["bogus"]}})
    with pytest.raises(agent_settings.ConfigError, match=re.escape("selection.label_selector")):
        load_with_agent({"selection": {"label_selector": "a in ()"}})
    with pytest.raises(agent_settings.ConfigError, match=re.escape("selection.canaries")):
        load_with_agent({"selection": {"canaries": ["nope"]}})
