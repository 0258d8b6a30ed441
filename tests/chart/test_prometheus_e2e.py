"""End to end on loopback: Debian's Prometheus scrapes a running `svcprobe demo` agent with
svcprobe's rules loaded, every dashboard query returns data, and a DNS-failure alert fires
through the Prometheus API.

The demo serves a small inventory on 127.0.0.0/8 with broken parts on purpose (a wrong DNS
answer, a missing record, a dead endpoint). The rules are a test copy of
dashboards/svcprobe-rules.yaml with every `for:` shortened and group intervals of 1 s; the
expressions and thresholds are the shipped ones. Prometheus gets the labels the chart's
ServiceMonitor would add (job="svcprobe", node, pod, namespace; honor_labels as in the chart).

Waits are bounded by deadlines; nothing asserts how long anything took.
"""

from __future__ import annotations

import pathlib
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.chart import ROOT, RULES, dashboard_queries, grafana_expand, tool
from tests.support.processes import free_port, http_body, http_json, start, stop, wait_for

pytestmark = pytest.mark.integration

NODE = "demo-node"

# Queries that have nothing to show in the demo, and why. Everything else must return data.
EMPTY_IN_DEMO = {
    "panel 'DNS failure ratio per DNS replica (endpoint path)' target A":
        "the demo's agent asks its DNS server only on the resolver path",
    "panel 'Discovery: watch restarts and relists' target A":
        "a static inventory has no Kubernetes watch to restart",
    "panel 'Discovery: watch restarts and relists' target B":
        "a static inventory is never relisted",
    "panel 'Kubernetes API synced' target A":
        "svcprobe_kube_synced exists only with Kubernetes API discovery, not a static inventory",
}


def svcprobe_bin() -> str:
    exe = ROOT / ".venv" / "bin" / "svcprobe"
    if not exe.exists():
        pytest.skip("no .venv/bin/svcprobe (make venv)")
    help_run = subprocess.run([str(exe), "demo", "--help"], capture_output=True, text=True)
    if help_run.returncode != 0:
        pytest.skip("`svcprobe demo` is not available yet")
    return str(exe)


def test_rules_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """The shipped rules with short `for:` and 1 s group intervals; nothing else changed."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "3s"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


test_rules_copy.__test__ = False  # a helper, not a test


@pytest.fixture
def stack(tmp_path: pathlib.Path) -> Iterator[dict[str, Any]]:
    exe = svcprobe_bin()
    prometheus = tool("prometheus")
    agent_port, prom_port = free_port(), free_port()
    procs: list[subprocess.Popen[str]] = []
    agent = start([exe, "demo", "--listen", f"127.0.0.1:{agent_port}", "--interval", "1",
                   "--duration", "600", "--log-level", "warning"], tmp_path / "demo.log")
    procs.append(agent)
    try:
        wait_for("the demo agent's /metrics", lambda: b"svcprobe_sweeps_total" in http_body(
            f"http://127.0.0.1:{agent_port}/metrics"), procs)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(test_rules_copy(tmp_path))],
            "scrape_configs": [{
                "job_name": "svcprobe",
                "honor_labels": True,   # as the chart's ServiceMonitor
                "static_configs": [{
                    "targets": [f"127.0.0.1:{agent_port}"],
                    # What the ServiceMonitor's relabelings add in a cluster.
                    "labels": {"node": NODE, "pod": "svcprobe-demo", "namespace": "svcprobe"},
                }],
            }],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        server = start([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                       tmp_path / "prometheus.log")
        procs.append(server)
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait_for("Prometheus to be ready", lambda: http_body(f"http://127.0.0.1:{prom_port}/-/ready"),
                 procs)
        yield {"api": api, "procs": procs}
    finally:
        for p in reversed(procs):
            stop(p)


def query(api: str, expr: str) -> list[dict[str, Any]]:
    body = http_json(f"{api}/query?" + urllib.parse.urlencode({"query": expr}))
    assert body["status"] == "success", body
    data = body["data"]
    if data["resultType"] == "scalar":
        return [{"value": data["result"]}]
    return data["result"]


def test_prometheus_scrapes_the_agent_rules_fire_and_dashboard_has_data(stack: dict[str, Any]) -> None:
    api, procs = stack["api"], stack["procs"]

    # The rules loaded cleanly (Prometheus's own parser and evaluator, not only promtool).
    groups = http_json(f"{api}/rules")["data"]["groups"]
    assert {g["name"] for g in groups} == {"svcprobe.rules", "svcprobe.alerts"}

    # The target is up with the labels the rules rely on.
    up = wait_for("the scrape", lambda: query(api, 'up{job="svcprobe"} == 1'), procs)
    assert up[0]["metric"]["node"] == NODE

    # A DNS-failure alert fires: the demo serves one Service a stale address.
    def wrong_answers_firing() -> list[dict[str, Any]]:
        alerts = http_json(f"{api}/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "SvcprobeDNSWrongAnswers"
                and a["state"] == "firing"]

    (alert,) = wait_for("SvcprobeDNSWrongAnswers to fire", wrong_answers_firing, procs)
    assert alert["labels"]["path"] == "resolver"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["runbook_url"].endswith("#svcprobednswronganswers")
    assert "resolver path" in alert["annotations"]["summary"]

    # The recording chain works on real samples: the node's resolver failure ratio is above 0.
    ratio = wait_for("the node failure ratio", lambda: query(
        api, f'cluster_node_path:svcprobe_dns_lookup_failures:ratio_rate5m{{node="{NODE}", path="resolver"}} > 0'),
        procs)
    assert 0 < float(ratio[0]["value"][1]) < 1

    # The per-Service ratios join the failing gauge to the agent's scrapes by the labels the
    # scrape really has (node, pod): the demo's broken Services have one, between 0 and 1.
    ratios = wait_for("the per-Service failure ratios", lambda: query(
        api, f'cluster_node_service_check_path:svcprobe_service_failing:ratio10m{{node="{NODE}"}}'),
        procs)
    assert {r["metric"]["check"] for r in ratios} == {"dns", "tcp"}
    assert all(0 < float(r["value"][1]) <= 1 for r in ratios)

    # Nothing that the demo does not warrant is firing.
    firing = {a["labels"]["alertname"] for a in http_json(f"{api}/alerts")["data"]["alerts"]
              if a["state"] == "firing"}
    assert not firing & {"SvcprobeAgentDown", "SvcprobeAgentAbsent", "SvcprobeSweepsStale",
                         "SvcprobeClusterIPFailingOnNode", "SvcprobeCoreDNSReplicaFailing"}

    # Every dashboard query returns data (with the variables at "All" and a 30 s rate window).
    queries = [(where, grafana_expand(expr, {"$__rate_interval": "30s"}))
               for where, expr in dashboard_queries()]
    expected = [(w, e) for w, e in queries if w not in EMPTY_IN_DEMO]
    assert len(expected) >= 30

    def all_have_data() -> list[str] | None:
        empty = [w for w, e in expected if not query(api, e)]
        return None if empty else ["ok"]

    try:
        wait_for("every dashboard query to return data", all_have_data, procs)
    except pytest.fail.Exception:
        empty = [f"{w}: {e}" for w, e in expected if not query(api, e)]
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty))

    # The known-empty ones are empty for the stated reason, not by accident of a typo.
    for where, expr in queries:
        if where in EMPTY_IN_DEMO:
            assert not query(api, expr), f"{where} has data now: drop it from EMPTY_IN_DEMO"
