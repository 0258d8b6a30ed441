"""agent.settings: defaults, sources and their precedence, validation, resolv.conf defaults.

DESIGN §3: one YAML file, overridable by SVCPROBE_* variables and flags; every key documented
and validated at start-up, a bad value stops the agent with a message naming the key;
defaults from the pod's resolv.conf. Tests never read the machine's /etc/resolv.conf: every
load either configures nameservers or points dns.resolv_conf at a temporary file.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from agent import settings as S

NS = {"dns": {"nameservers": ["198.18.0.10"]}}
KUBELET_RESOLV_CONF = (
    "# written by the kubelet\n"
    "nameserver 198.18.0.10\n"
    "search probe.svc.k8s.example.internal svc.k8s.example.internal k8s.example.internal"
    " us-east-1.compute.internal corp.example\n"
    "options ndots:5\n"
)
REPO = Path(__file__).resolve().parents[2]


def _value(s: S.Settings, path: tuple[str, ...]) -> Any:
    obj: Any = s
    for p in path:
        obj = getattr(obj, p)
    return obj


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def resolv(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(text: str) -> str:
        p = tmp_path / "resolv.conf"
        p.write_text(text, encoding="utf-8")
        return str(p)

    return write


# --------------------------------------------------------------------------- schema and docs


def test_every_leaf_has_a_doc_and_a_unique_env_name() -> None:
    leaves = S.leaves()
    assert leaves, "no settings?"
    for leaf in leaves:
        assert isinstance(leaf.meta.get("doc"), str) and leaf.meta["doc"].strip(), leaf.key
        assert leaf.env == "SVCPROBE_" + leaf.key.replace(".", "_").upper()
    envs = [leaf.env for leaf in leaves]
    assert len(envs) == len(set(envs)), sorted(e for e in envs if envs.count(e) > 1)
    keys = [leaf.key for leaf in leaves]
    assert len(keys) == len(set(keys))


def test_defaults_are_valid_for_their_own_constraints() -> None:
    for leaf in S.leaves():
        d = leaf.default
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            lo, hi = leaf.meta.get("min"), leaf.meta.get("max")
            assert lo is None or d >= lo, leaf.key
            assert hi is None or d <= hi, leaf.key
        choices = leaf.meta.get("choices")
        if choices:
            assert set(d if isinstance(d, tuple) else (d,)) <= set(choices), leaf.key


def test_env_names_do_not_collide_with_kubernetes_service_links() -> None:
    """A Service named `svcprobe` injects SVCPROBE_SERVICE_HOST, SVCPROBE_PORT_9142_TCP... into pods."""
    for leaf in S.leaves():
        assert not leaf.env.startswith(("SVCPROBE_SERVICE_", "SVCPROBE_PORT")), leaf.env
    links = {
        "SVCPROBE_SERVICE_HOST": "198.18.0.50", "SVCPROBE_SERVICE_PORT": "9142",
        "SVCPROBE_SERVICE_PORT_METRICS": "9142", "SVCPROBE_PORT": "tcp://198.18.0.50:9142",
        "SVCPROBE_PORT_9142_TCP": "tcp://198.18.0.50:9142", "SVCPROBE_PORT_9142_TCP_PROTO": "tcp",
        "SVCPROBE_PORT_9142_TCP_PORT": "9142", "SVCPROBE_PORT_9142_TCP_ADDR": "198.18.0.50",
    }
    assert S.load(file_data=NS, env=links) == S.load(file_data=NS)


def test_configuration_doc_is_generated_from_the_schema() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert doc == S.reference_markdown(), (
        "docs/configuration.md is stale: regenerate it with `python -m agent config-reference > docs/configuration.md`")


def test_reference_lists_every_key_with_env_and_default() -> None:
    md = S.reference_markdown()
    for leaf in S.leaves():
        row = next(line for line in md.splitlines() if line.startswith(f"| `{leaf.key}` |"))
        assert f"`{leaf.env}`" in row
        assert leaf.meta["doc"] in row


# --------------------------------------------------------------------------- defaults and precedence


def test_defaults() -> None:
    s = S.load(file_data=NS)
    for leaf in S.leaves():
        if leaf.path == ("dns", "nameservers"):
            continue
        assert _value(s, leaf.path) == leaf.default, leaf.key
    assert s.dns.nameservers == ("198.18.0.10",)
    assert s.dns.ndots == 5 and s.dns.cluster_domain == "cluster.local" and s.dns.search == ()
    assert s.listen == "0.0.0.0:9142"


def test_load_does_not_consult_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVCPROBE_DNS_NDOTS", "3")
    assert S.load(file_data=NS).dns.ndots == 5  # only the mapping given as env= counts


@pytest.mark.parametrize(
    ("file", "env", "overrides", "expected"),
    [
        pytest.param(None, None, None, 5, id="default"),
        pytest.param(3, None, None, 3, id="file"),
        pytest.param(3, "4", None, 4, id="env-over-file"),
        pytest.param(None, "4", None, 4, id="env-over-default"),
        pytest.param(3, "4", 2, 2, id="override-over-env"),
        pytest.param(3, None, "7", 7, id="override-text-over-file"),
        pytest.param(None, None, 0, 0, id="override-zero"),
    ],
)
def test_precedence_file_env_overrides(file: int | None, env: str | None, overrides: Any, expected: int) -> None:
    data = _merge(NS, {"dns": {"ndots": file}}) if file is not None else NS
    s = S.load(file_data=data, env={"SVCPROBE_DNS_NDOTS": env} if env is not None else {},
               overrides={"dns.ndots": overrides} if overrides is not None else None)
    assert s.dns.ndots == expected


def test_precedence_for_lists() -> None:
    data = _merge(NS, {"dns": {"search": ["file.example"]}})
    assert S.load(file_data=data).dns.search == ("file.example",)
    assert S.load(file_data=data, env={"SVCPROBE_DNS_SEARCH": "env.example"}).dns.search == ("env.example",)
    s = S.load(file_data=data, env={"SVCPROBE_DNS_SEARCH": "env.example"},
               overrides={"dns.search": ["flag.example", "flag2.example"]})
    assert s.dns.search == ("flag.example", "flag2.example")


def test_empty_yaml_value_means_default() -> None:
    s = S.load(file_data=_merge(NS, {"dns": {"ndots": None}, "tcp": None, "listen": None}))
    assert s.dns.ndots == 5 and s.listen == "0.0.0.0:9142" and s.tcp == S.TcpSettings()


@pytest.mark.parametrize(
    ("env", "path", "expected"),
    [
        pytest.param({"SVCPROBE_DNS_SEARCH": "a.example, b.example,,c.example "}, ("dns", "search"),
                     ("a.example", "b.example", "c.example"), id="list-comma-separated"),
        pytest.param({"SVCPROBE_DNS_SEARCH": ""}, ("dns", "search"), (), id="list-empty"),
        pytest.param({"SVCPROBE_DNS_FORMS": "fqdn,short"}, ("dns", "forms"), ("fqdn", "short"), id="list-choices"),
        pytest.param({"SVCPROBE_DNS_NAMESERVERS": "198.18.0.10:5353,[fd00::10]:53"}, ("dns", "nameservers"),
                     ("198.18.0.10:5353", "[fd00::10]:53"), id="nameserver-list"),
        pytest.param({"SVCPROBE_TCP_ENABLED": "false"}, ("tcp", "enabled"), False, id="bool-false"),
        pytest.param({"SVCPROBE_TCP_ENABLED": " Off "}, ("tcp", "enabled"), False, id="bool-off"),
        pytest.param({"SVCPROBE_TCP_ENABLED": "0"}, ("tcp", "enabled"), False, id="bool-0"),
        pytest.param({"SVCPROBE_DNS_SRV": "no"}, ("dns", "srv"), False, id="bool-no"),
        pytest.param({"SVCPROBE_DNS_SRV": "YES"}, ("dns", "srv"), True, id="bool-yes"),
        pytest.param({"SVCPROBE_DNS_SRV": "1"}, ("dns", "srv"), True, id="bool-1"),
        pytest.param({"SVCPROBE_DNS_SRV": "on"}, ("dns", "srv"), True, id="bool-on"),
        pytest.param({"SVCPROBE_DNS_NDOTS": " 2 "}, ("dns", "ndots"), 2, id="int"),
        pytest.param({"SVCPROBE_DNS_TIMEOUT_SECONDS": "0.25"}, ("dns", "timeout_seconds"), 0.25, id="float"),
        pytest.param({"SVCPROBE_DNS_TIMEOUT_SECONDS": "3"}, ("dns", "timeout_seconds"), 3.0, id="float-from-int-text"),
        pytest.param({"SVCPROBE_LOG_LEVEL": "debug"}, ("log_level",), "debug", id="string-choice"),
    ],
)
def test_env_parsing(env: dict[str, str], path: tuple[str, ...], expected: Any) -> None:
    data = None if "SVCPROBE_DNS_NAMESERVERS" in env else NS
    value = _value(S.load(file_data=data, env=env), path)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"SVCPROBE_TCP_ENABLED": "maybe"}, "tcp.enabled: must be true or false", id="bool"),
        pytest.param({"SVCPROBE_DNS_NDOTS": "five"}, "dns.ndots: 'five' is not a number", id="int-word"),
        pytest.param({"SVCPROBE_DNS_NDOTS": "2.5"}, "dns.ndots: '2.5' is not a number", id="int-fraction"),
        pytest.param({"SVCPROBE_DNS_NDOTS": "16"}, "dns.ndots: 16 is above the maximum 15", id="int-range"),
        pytest.param({"SVCPROBE_DNS_TIMEOUT_SECONDS": "2s"}, "dns.timeout_seconds: '2s' is not a number",
                     id="float-unit"),
        pytest.param({"SVCPROBE_DNS_TIMEOUT_SECONDS": "nan"}, "dns.timeout_seconds: nan is not a finite number",
                     id="float-nan"),
        pytest.param({"SVCPROBE_SCHEDULER_INTERVAL_SECONDS": "inf"}, "scheduler.interval_seconds: inf is not a finite",
                     id="float-inf"),
        pytest.param({"SVCPROBE_DNS_QUERY_BUDGET_PER_SECOND": "-Infinity"}, "dns.query_budget_per_second: -inf is not",
                     id="float-minus-inf"),
        pytest.param({"SVCPROBE_DNS_FORMS": "short,long"}, "dns.forms: 'long' is not one of", id="choice"),
        pytest.param({"SVCPROBE_DNS_FORMS": " , "}, "dns.forms: must name at least one of", id="choice-empty"),
    ],
)
def test_env_errors_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(S.ConfigError) as info:
        S.load(file_data=NS, env=env)
    assert str(info.value).startswith(message)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"bogus": 1}, "bogus: unknown setting", id="unknown-top-level"),
        pytest.param({"dns": {"ndot": 5}}, "dns.ndot: unknown setting", id="unknown-nested"),
        pytest.param({"dns": {"ndots": {"x": 1}}}, "dns.ndots: must be a number", id="leaf-given-a-mapping"),
        pytest.param({"tcp": {"enabled": {"deep": {"er": 1}}}}, "tcp.enabled: must be true or false",
                     id="leaf-given-nested-mapping"),
        pytest.param({"dns": 5}, "dns: must be a mapping", id="section-not-mapping"),
        pytest.param({"dns": ["ndots"]}, "dns: must be a mapping", id="section-list"),
        pytest.param({"listen": 9142}, "listen: must be a string", id="string-given-number"),
        pytest.param({"log_level": "verbose"}, "log_level: 'verbose' is not one of debug, info, warning, error",
                     id="choice"),
        pytest.param({"log_format": "xml"}, "log_format: 'xml' is not one of", id="choice-format"),
        pytest.param({"dns": {"ndots": "5"}}, "dns.ndots: must be a number", id="number-as-text-in-file"),
        pytest.param({"dns": {"ndots": True}}, "dns.ndots: must be a number", id="bool-is-not-a-number"),
        pytest.param({"dns": {"ndots": 2.5}}, "dns.ndots: must be a whole number", id="int-fraction"),
        pytest.param({"dns": {"ndots": 16}}, "dns.ndots: 16 is above the maximum 15", id="above-max"),
        pytest.param({"dns": {"ndots": -1}}, "dns.ndots: -1 is below the minimum 0", id="below-min"),
        pytest.param({"dns": {"timeout_seconds": 0}}, "dns.timeout_seconds: 0.0 is below the minimum", id="float-min"),
        pytest.param({"dns": {"timeout_seconds": math.nan}}, "dns.timeout_seconds: nan is not a finite number",
                     id="nan"),
        pytest.param({"scheduler": {"interval_seconds": math.inf}},
                     "scheduler.interval_seconds: inf is not a finite number", id="inf"),
        pytest.param({"dns": {"ndots": math.inf}}, "dns.ndots: must be a whole number", id="inf-int"),
        pytest.param({"scheduler": {"spread": 1.5}}, "scheduler.spread: 1.5 is above the maximum 1.0", id="fraction"),
        pytest.param({"metrics": {"series_budget": 10}}, "metrics.series_budget: 10 is below the minimum 100",
                     id="series-budget"),
        pytest.param({"tcp": {"enabled": "yes"}}, "tcp.enabled: must be true or false", id="bool-as-text-in-file"),
        pytest.param({"dns": {"forms": "short"}}, "dns.forms: must be a list", id="list-given-string"),
        pytest.param({"dns": {"forms": []}}, "dns.forms: must name at least one of", id="list-empty-choices"),
        pytest.param({"dns": {"forms": ["short", "bogus"]}}, "dns.forms: 'bogus' is not one of", id="list-bad-choice"),
        pytest.param({"dns": {"qtypes": ["A", "MX"]}}, "dns.qtypes: 'MX' is not one of A, AAAA", id="qtypes"),
        pytest.param({"dns": {"search": ["ok.example", 5]}}, "dns.search: every entry must be a string",
                     id="list-entry-type"),
        pytest.param({"dns": {"search": ["ok.example", "a..b"]}}, "dns.search: 'a..b' is not a DNS domain",
                     id="search-domain"),
        pytest.param({"dns": {"cluster_domain": "."}}, "dns.cluster_domain: '' is not a DNS domain", id="zone-root"),
        pytest.param({"dns": {"cluster_domain": "x" * 64 + ".local"}}, "dns.cluster_domain:", id="zone-long-label"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(S.ConfigError) as info:
        S.load(file_data=_merge(NS, data))
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("data", [pytest.param(["dns"], id="list"), pytest.param("text", id="string")])
def test_file_must_be_a_mapping(data: Any) -> None:
    with pytest.raises(S.ConfigError, match=r"^\(top level\): must be a mapping"):
        S.load(file_data=data)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"dns.bogus": 1}, "dns.bogus: unknown setting", id="unknown"),
        pytest.param({"dns": 1}, "dns: unknown setting", id="section"),
        pytest.param({"dns.ndots": "x"}, "dns.ndots: 'x' is not a number", id="text"),
        pytest.param({"dns.nameservers": ["dns.example"]}, "dns.nameservers: 'dns.example' is not an IP address",
                     id="nameserver"),
        pytest.param({"listen": "localhost"}, "listen: 'localhost' needs a port", id="listen"),
    ],
)
def test_override_errors_name_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(S.ConfigError) as info:
        S.load(file_data=NS, overrides=overrides)
    assert str(info.value).startswith(message)


def test_domains_are_normalised() -> None:
    s = S.load(file_data=_merge(NS, {"dns": {"cluster_domain": "K8S.Example.", "search": ["Corp.Example."]}}))
    assert s.dns.cluster_domain == "k8s.example" and s.dns.search == ("corp.example",)


def test_settings_are_frozen() -> None:
    s = S.load(file_data=NS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.dns.ndots = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- resolv.conf defaults


def test_resolv_conf_gives_dns_defaults(resolv) -> None:  # type: ignore[no-untyped-def]
    s = S.load(file_data={"dns": {"resolv_conf": resolv(KUBELET_RESOLV_CONF)}})
    assert s.dns.nameservers == ("198.18.0.10",)
    assert s.dns.ndots == 5
    assert s.dns.cluster_domain == "k8s.example.internal"
    assert s.dns.search == ("us-east-1.compute.internal", "corp.example")  # host domains only
    assert S.nameserver_addresses(s) == [("198.18.0.10", 53)]


def test_odd_but_legal_resolv_conf_search_entries_are_taken_as_resolvers_take_them(resolv) -> None:  # type: ignore[no-untyped-def]
    long_label = "x" * 64  # no query can carry it: the libraries skip it or end the walk there
    text = ("nameserver 198.18.0.10\n"
            f"search ns.svc.cluster.local svc.cluster.local cluster.local _ad.corp {long_label}.example .\n")
    s = S.load(file_data={"dns": {"resolv_conf": resolv(text)}})
    assert s.dns.search == ("_ad.corp", f"{long_label}.example")
    with pytest.raises(S.ConfigError, match=r"dns\.search"):  # configured by hand: checked
        S.load(file_data=_merge(NS, {"dns": {"search": [f"{long_label}.example"]}}))


def test_resolv_conf_without_options_gives_libc_ndots(resolv) -> None:  # type: ignore[no-untyped-def]
    s = S.load(file_data={"dns": {"resolv_conf": resolv("nameserver 198.18.0.10\nsearch corp.example\n")}})
    assert s.dns.ndots == 1
    assert s.dns.cluster_domain == "cluster.local"  # no svc.<zone> entry: the default stays
    assert s.dns.search == ("corp.example",)


def test_explicit_values_beat_resolv_conf(resolv) -> None:  # type: ignore[no-untyped-def]
    path = resolv(KUBELET_RESOLV_CONF)
    s = S.load(file_data={"dns": {"resolv_conf": path, "ndots": 2, "search": []}},
               env={"SVCPROBE_DNS_CLUSTER_DOMAIN": "other.zone"})
    assert s.dns.nameservers == ("198.18.0.10",)
    assert (s.dns.ndots, s.dns.cluster_domain, s.dns.search) == (2, "other.zone", ())


@pytest.mark.parametrize(
    "source",
    [
        pytest.param({"file_data": {"dns": {"nameservers": ["198.18.0.53"]}}}, id="file"),
        pytest.param({"env": {"SVCPROBE_DNS_NAMESERVERS": "198.18.0.53"}}, id="env"),
        pytest.param({"overrides": {"dns.nameservers": ["198.18.0.53"]}}, id="flag"),
    ],
)
def test_resolv_conf_not_read_when_a_nameserver_is_configured(tmp_path: Path, source: dict[str, Any]) -> None:
    missing = str(tmp_path / "no-such-resolv.conf")
    kwargs = dict(source)
    kwargs.setdefault("overrides", {})
    kwargs["overrides"] = {**kwargs["overrides"], "dns.resolv_conf": missing}
    s = S.load(**kwargs)
    assert s.dns.nameservers == ("198.18.0.53",)
    assert (s.dns.ndots, s.dns.cluster_domain, s.dns.search) == (5, "cluster.local", ())


def test_configured_nameserver_is_never_mixed_with_resolv_conf(resolv) -> None:  # type: ignore[no-untyped-def]
    s = S.load(file_data={"dns": {"resolv_conf": resolv(KUBELET_RESOLV_CONF), "nameservers": ["198.18.0.53"]}})
    assert (s.dns.ndots, s.dns.cluster_domain, s.dns.search) == (5, "cluster.local", ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(None, "dns.resolv_conf: cannot read", id="missing"),
        pytest.param("search svc.cluster.local\noptions ndots:5\n", "dns.resolv_conf:", id="no-nameserver"),
        pytest.param("nameserver resolver.example\n", "dns.nameservers: 'resolver.example' is not an IP address",
                     id="bad-nameserver"),
    ],
)
def test_resolv_conf_problems(tmp_path: Path, text: str | None, message: str) -> None:
    p = tmp_path / "resolv.conf"
    if text is not None:
        p.write_text(text)
    with pytest.raises(S.ConfigError) as info:
        S.load(file_data={"dns": {"resolv_conf": str(p)}})
    msg = str(info.value)
    assert msg.startswith(message)
    if "resolv_conf" in message:
        assert str(p) in msg and "dns.nameservers" in msg  # says what to do instead


def test_no_nameserver_and_no_resolv_conf() -> None:
    with pytest.raises(S.ConfigError, match=r"^dns\.nameservers: "):
        S.load(file_data={"dns": {"resolv_conf": ""}})


def test_empty_nameserver_list() -> None:
    with pytest.raises(S.ConfigError, match=r"^dns\.nameservers: at least one nameserver"):
        S.load(file_data={"dns": {"nameservers": []}})


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("198.18.0.10", ("198.18.0.10", 53), id="ipv4"),
        pytest.param(" 198.18.0.10 ", ("198.18.0.10", 53), id="whitespace"),
        pytest.param("198.18.0.10:5353", ("198.18.0.10", 5353), id="ipv4-port"),
        pytest.param("fd00::10", ("fd00::10", 53), id="ipv6-bare"),
        pytest.param("::1", ("::1", 53), id="ipv6-loopback"),
        pytest.param("[fd00::10]", ("fd00::10", 53), id="ipv6-brackets"),
        pytest.param("[fd00::10]:5353", ("fd00::10", 5353), id="ipv6-brackets-port"),
        pytest.param("fd00::10:53", ("fd00::10:53", 53), id="ipv6-without-brackets-is-all-address"),
        pytest.param("127.0.0.1:65535", ("127.0.0.1", 65535), id="max-port"),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert S.parse_nameserver(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("198.18.0.10:0", "port 0", id="port-0"),
        pytest.param("198.18.0.10:65536", "65536 is not a port number", id="port-65536"),
        pytest.param("198.18.0.10:-1", "-1 is not a port number", id="port-negative"),
        pytest.param("198.18.0.10:dns", "'dns' is not a port number", id="port-name"),
        pytest.param("[fd00::10", "is not [IPv6]:PORT", id="unclosed-bracket"),
        pytest.param("[fd00::10]5353", "is not [IPv6]:PORT", id="no-colon-after-bracket"),
        pytest.param("[fd00::10]:x", "'x' is not a port number", id="ipv6-bad-port"),
        pytest.param("dns.example:53", "'dns.example' is not an IP address", id="hostname"),
        pytest.param("198.18.0.256", "is not an IP address", id="bad-ipv4"),
        pytest.param("", "is not an IP address", id="empty"),
    ],
)
def test_parse_nameserver_errors(text: str, words: str) -> None:
    with pytest.raises(S.ConfigError) as info:
        S.parse_nameserver(text)
    assert str(info.value).startswith("dns.nameservers: ")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0.0.0.0:9142", ("0.0.0.0", 9142), id="default"),
        pytest.param(":9142", ("0.0.0.0", 9142), id="empty-host"),
        pytest.param("127.0.0.1:0", ("127.0.0.1", 0), id="ephemeral-port"),
        pytest.param("[::]:9142", ("::", 9142), id="ipv6-any"),
        pytest.param("[::1]:8080", ("::1", 8080), id="ipv6-loopback"),
        pytest.param("localhost:9142", ("localhost", 9142), id="hostname"),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert S.parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("9142", "needs a port", id="no-port"),
        pytest.param("[::]", "needs a port", id="ipv6-no-port"),
        pytest.param("0.0.0.0:70000", "70000 is not a port number", id="port-range"),
        pytest.param("0.0.0.0:http", "'http' is not a port number", id="port-name"),
        pytest.param("[::]9142", "is not [IPv6]:PORT", id="bracket-no-colon"),
    ],
)
def test_parse_listen_errors(text: str, words: str) -> None:
    with pytest.raises(S.ConfigError) as info:
        S.parse_listen(text)
    assert str(info.value).startswith("listen: ") and words in str(info.value)


def test_listen_is_validated_by_load() -> None:
    with pytest.raises(S.ConfigError, match=r"^listen: "):
        S.load(file_data=_merge(NS, {"listen": "0.0.0.0:99999"}))


def test_nameserver_addresses_in_order() -> None:
    s = S.load(file_data={"dns": {"nameservers": ["198.18.0.10", "[fd00::10]:5353", "127.0.0.1:53"]}})
    assert S.nameserver_addresses(s) == [("198.18.0.10", 53), ("fd00::10", 5353), ("127.0.0.1", 53)]
