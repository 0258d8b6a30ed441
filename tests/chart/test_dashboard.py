"""The Grafana dashboard: generated from dashboards/generate_dashboard.py, linted with Grafana's
dashboard-linter, and shaped to answer the questions in the issue."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re

from tests.support.chart import DASHBOARD, DASHBOARDS, dashboard, panels, run, tool


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
    # No .lint exclusions file: every rule applies.
    copy = tmp_path / DASHBOARD.name
    copy.write_text(DASHBOARD.read_text())
    proc = run([tool("dashboard-linter"), "lint", "--strict", str(copy)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "❌" not in proc.stdout and "⚠" not in proc.stdout


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
