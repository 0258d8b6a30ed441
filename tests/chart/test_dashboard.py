"""The Grafana dashboard: generated from dashboards/generate_dashboard.py, linted with Grafana's
dashboard-linter, and shaped to answer the questions in the issue."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import shutil
from typing import Any

import yaml

from tests.support.chart import DASHBOARD, DASHBOARDS, dashboard, panels, run, tool

LINT_CONFIG = DASHBOARDS / ".lint"
ALERTS_PANEL = "Firing svcprobe alerts"


def generator():
    spec = importlib.util.spec_from_file_location("generate_dashboard",
                                                  DASHBOARDS / "generate_dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_the_generator_output() -> None:
    assert DASHBOARD.read_text() == generator().render(), \
        "run: python3 dashboards/generate_dashboard.py && dashboards/sync-chart-files.sh"


def test_dashboard_linter_strict(tmp_path: pathlib.Path) -> None:
    # Every rule applies, except the two exclusions in dashboards/.lint (checked below).
    copy = tmp_path / DASHBOARD.name
    copy.write_text(DASHBOARD.read_text())
    shutil.copy(LINT_CONFIG, tmp_path / ".lint")
    proc = run([tool("dashboard-linter"), "lint", "--strict", str(copy)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "❌" not in proc.stdout and "⚠" not in proc.stdout


def test_lint_exclusions_cover_only_the_alerts_panel(tmp_path: pathlib.Path) -> None:
    """ALERTS is not a scraped series: svcprobe's aggregated alerts have no job or instance, so
    that one panel cannot carry the job/instance matchers every other query has."""
    config = yaml.safe_load(LINT_CONFIG.read_text())
    assert set(config) == {"exclusions"}
    assert set(config["exclusions"]) == {"target-job-rule", "target-instance-rule"}
    for rule in config["exclusions"].values():
        assert rule["reason"].strip()
        assert rule["entries"] == [{"dashboard": dashboard()["title"], "panel": ALERTS_PANEL}]
    (alerts_panel,) = [p for p in panels(dashboard()) if p["title"] == ALERTS_PANEL]
    for t in alerts_panel["targets"]:
        assert re.findall(r"\b[A-Za-z_:]+\{", t["expr"]) == ["ALERTS{"], t["expr"]
    # Without the exclusions the linter reports exactly that panel.
    copy = tmp_path / DASHBOARD.name
    copy.write_text(DASHBOARD.read_text())
    proc = run([tool("dashboard-linter"), "lint", "--strict", str(copy)], check=False)
    failures = [line for line in proc.stdout.splitlines() if "❌" in line]
    assert failures and all(f"panel '{ALERTS_PANEL}'" in line for line in failures), failures


def test_dashboard_linter_catches_a_broken_query(tmp_path: pathlib.Path) -> None:
    dash = dashboard()
    next(p for p in panels(dash) if p["type"] == "timeseries")["targets"][0]["expr"] = \
        "rate(svcprobe_dns_lookups_total[5m])"
    copy = tmp_path / "broken.json"
    copy.write_text(json.dumps(dash))
    proc = run([tool("dashboard-linter"), "lint", "--strict", str(copy)], check=False)
    assert proc.returncode != 0


def test_stable_uid_and_variables() -> None:
    dash = dashboard()
    assert dash["uid"] == "svcprobe-overview"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("cluster", "node", "namespace", "job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["includeAll"] and variables[name]["allValue"]


def test_every_panel_uses_the_datasource_variable_and_scope() -> None:
    for p in panels(dashboard()):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["description"].strip(), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            # Every selector is scoped by cluster, job, node and instance.
            for sel in re.findall(r"\b(svcprobe_\w+|up)\{([^}]*)\}", t["expr"]):
                for var in ("cluster", "job", "node", "instance"):
                    assert f'{var}=~"${var}"' in sel[1], (p["title"], sel)


def test_panels_answer_the_questions() -> None:
    dash = dashboard()
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert any("is DNS" in r and "OK" in r for r in rows)
    assert any("node × path" in r for r in rows)
    assert any("Which Services" in r for r in rows)
    assert any("slow" in r for r in rows)
    assert any("ClusterIP vs endpoint" in r for r in rows)
    assert any("Agent health" in r for r in rows)
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels(dash)}
    joined = " ".join(exprs.values())
    assert "by (node, path)" in joined                                  # where: node × path
    assert "svcprobe_service_failing" in joined                         # which Services
    assert "sum by (form, le)" in joined                                # how slow, by form
    assert "svcprobe_dns_queries_per_lookup_sum" in joined              # amplification / own load
    assert "sum by (node, target)" in joined                            # ClusterIP vs endpoint
    assert "svcprobe_last_sweep_timestamp_seconds" in joined            # agent health
    matrix = next(p for p in panels(dash) if p["title"] == "DNS failure ratio per node and path")
    assert matrix["transformations"][0]["options"] == {"columnField": "path", "rowField": "node",
                                                       "valueField": "Value"}


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        cells = {(g["y"] + dy, g["x"] + dx) for dy in range(g["h"]) for dx in range(g["w"])}
        assert not cells & taken, p["title"]
        taken |= cells
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def rows(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in dash["panels"] if p["type"] == "row"}


def row_panels(dash: dict[str, Any], title: str) -> list[dict[str, Any]]:
    """The panels under a row: nested when it is collapsed, else up to the next row."""
    row = rows(dash)[title]
    if row["collapsed"]:
        return list(row["panels"])
    top = dash["panels"]
    start = top.index(row) + 1
    end = next((i for i in range(start, len(top)) if top[i]["type"] == "row"), len(top))
    return top[start:end]


def test_overview_shows_dns_latency_and_firing_alerts() -> None:
    dash = dashboard()
    (overview,) = [t for t in rows(dash) if t.startswith("Overview")]
    by_title = {p["title"]: p for p in row_panels(dash, overview)}
    p99 = by_title["DNS lookup latency p99"]
    assert p99["type"] == "stat" and p99["fieldConfig"]["defaults"]["unit"] == "s"
    (t,) = p99["targets"]
    assert t["expr"].startswith("histogram_quantile(0.99, sum by (le) (rate(")
    assert "svcprobe_dns_lookup_duration_seconds_bucket{" in t["expr"]
    # Red where SvcprobeDNSLatencyHigh starts counting.
    steps = p99["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 1}
    alerts = by_title[ALERTS_PANEL]
    (t,) = alerts["targets"]
    assert t["expr"] == 'ALERTS{alertname=~"Svcprobe.*", alertstate="firing", cluster=~"$cluster"}'
    assert t["instant"] and t["format"] == "table"


def test_findings_row_is_kept() -> None:
    dash = dashboard()
    (findings,) = row_panels(dash, "Findings: what broke, by node")
    assert findings["title"] == "Current findings"
    assert "svcprobe_finding{" in findings["targets"][0]["expr"]


def test_agent_health_row_is_collapsed_with_its_panels_nested() -> None:
    dash = dashboard()
    agent = rows(dash)["Agent health and its own load"]
    assert agent["collapsed"] is True
    nested = agent["panels"]
    assert len(nested) >= 10
    titles = {p["title"] for p in nested}
    assert {"Sweep duration and lag", "Time since last sweep", "Agent versions"} <= titles
    assert not titles & {p["title"] for p in dash["panels"]}       # not also at the top level
    for p in nested:                                                 # laid out below the row
        assert p["gridPos"]["y"] > agent["gridPos"]["y"]
    # Every other row is open, and a collapsed row holds its panels only while collapsed.
    for title, row in rows(dash).items():
        if title != "Agent health and its own load":
            assert row["collapsed"] is False and row["panels"] == [], title


def test_per_node_timeseries_draw_at_most_ten_lines() -> None:
    """A line per node is unreadable and slow on a 5,000-node cluster: per-node timeseries show
    the top (or bottom) few at each moment."""
    checked = 0
    for p in panels(dashboard()):
        if p["type"] != "timeseries":
            continue
        for t in p["targets"]:
            if "{{node}}" not in t["legendFormat"]:
                continue
            checked += 1
            expr = t["expr"]
            outer = re.match(r"(topk|bottomk)( by \([a-z, ]+\))? \((\d+),|(topk|bottomk)\((\d+),",
                             expr)
            assert outer, f"{p['title']} {t['refId']}: not limited with topk/bottomk"
            k = int(outer.group(3) or outer.group(5))
            assert k <= 10, p["title"]
            if "\nor\n" in expr:   # top and bottom together
                assert sum(int(n) for n in re.findall(r"(?:topk|bottomk)\((\d+),", expr)) <= 10
    assert checked >= 12
