"""Shared helpers for the chart, rules and dashboard tests (marker `chart`).

Tools come from scripts/deps.d/40-monitoring.sh: promtool and prometheus from Debian, helm,
dashboard-linter and svcprobe-promql-inspect from the shared cache
(`${SVCPROBE_CACHE:-~/.cache/svcprobe}/bin`). A missing tool skips the tests that need it when
run by hand, and fails them under CI (CI=true), where the deps script must have installed it.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "svcprobe-rules.yaml"
RULE_TESTS = DASHBOARDS / "tests" / "svcprobe-rules-test.yaml"
DASHBOARD = DASHBOARDS / "svcprobe-dashboard.json"
RUNBOOK = DASHBOARDS / "runbook.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
CACHE_BIN = pathlib.Path(os.environ.get("SVCPROBE_CACHE", pathlib.Path.home() / ".cache" / "svcprobe")) / "bin"

# The Kubernetes version charts are rendered and validated for (kubernetes-validate schemas).
KUBE_VERSION = "1.31.0"


def tool(name: str) -> str:
    """Path of a test tool: the shared cache first, then PATH."""
    cached = CACHE_BIN / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not installed (run scripts/install-test-deps)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run(args: list[str], *, input: str | None = None, check: bool = True,
        cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, cwd=cwd, timeout=240)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def helm_template(values: Mapping[str, Any] | None = None, *, release: str = "probe",
                  namespace: str = "monitoring", extra: Iterable[str] = (),
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with `values` (as a values file)."""
    args = [tool("helm"), "template", release, str(CHART), "--namespace", namespace,
            "--kube-version", KUBE_VERSION, *extra]
    text = yaml.safe_dump(dict(values or {}))
    args += ["--values", "-"]
    return run(args, input=text, check=check)


def render(values: Mapping[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Rendered manifests (non-empty YAML documents), helm test hooks included."""
    out = helm_template(values, **kw).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def all_switches_on() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "ci" / "full-values.yaml").read_text())
    return values


# --- The metric contract (docs/metrics.md) ------------------------------------------------

# Labels that come from the scrape, not from the agent (docs/metrics.md and the brief).
TARGET_LABELS = frozenset({"node", "job", "instance", "pod", "namespace", "cluster"})


def metric_contract() -> dict[str, dict[str, Any]]:
    """Every sample name the agent exports -> {"type", "labels", "family"}.

    Parsed from the tables in docs/metrics.md (`| `name` | type | labels | meaning |`).
    Histograms expand into _bucket (plus `le`), _sum and _count.
    """
    out: dict[str, dict[str, Any]] = {}
    for line in METRICS_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`svcprobe_"):
            continue
        family = cells[0].strip("`")
        kind = cells[1].split()[0]
        # label names; values listed in brackets after a name, "`kind` (`dns`, `tcp`)", are not
        labels = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2])))
        if kind == "histogram":
            out[family + "_bucket"] = {"type": "counter", "labels": labels | {"le"}, "family": family}
            out[family + "_sum"] = {"type": "counter", "labels": set(labels), "family": family}
            out[family + "_count"] = {"type": "counter", "labels": set(labels), "family": family}
        else:
            out[family] = {"type": kind, "labels": labels, "family": family}
    return out


# --- Where PromQL lives -----------------------------------------------------------------------

def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def dashboard() -> dict[str, Any]:
    dash: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dash


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


# Values substituted for Grafana's variables before a query goes to Prometheus or its parser.
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$cluster": ".*",
    "$job": ".+",
    "$node": ".*",
    "$instance": ".+",
    "$namespace": ".*",
}


def grafana_expand(expr: str, overrides: Mapping[str, str] | None = None) -> str:
    values = {**GRAFANA_VARS, **(overrides or {})}
    # Longest names first, so $__rate_interval is not read as $__rate...
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", values[name]).replace(name, values[name])
    assert "$" not in expr.replace("$1", ""), f"unexpanded variable in {expr!r}"
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) for every panel target and every query variable's metric selector."""
    dash = dashboard()
    out = []
    for p in panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} target {t['refId']}", t["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]+)\)", var["definition"])
        assert m, f"variable {var['name']}: unexpected query {var['definition']!r}"
        # The selector must exist and carry the label: count by (label) (selector).
        out.append((f"variable {var['name']}", f"count by ({m.group(2)}) ({m.group(1)})"))
    return out


def rule_queries() -> list[tuple[str, str]]:
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in rules()]


def inspect_promql(exprs: list[str]) -> list[dict[str, Any]]:
    """Parse with Prometheus's own parser (svcprobe-promql-inspect) and report names used."""
    proc = run([tool("svcprobe-promql-inspect")], input=json.dumps(exprs))
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(result) == len(exprs)
    for r in result:
        r.setdefault("error", "")
    return result
