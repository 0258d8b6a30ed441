"""Alert and recording rules: promtool check/test, conventions, runbook links.

pint (cloudflare/pint) is not installable here (the Go module proxy refuses it), so the lint
checks that matter for these rules are written out below: `for:` on every alert, severity,
summary/description/runbook_url, runbook anchors that exist, counters only under rate(), rate
windows long enough for the scrape interval, and aggregations that keep `cluster`.
"""

from __future__ import annotations

import pathlib
import re
import shutil
from typing import Any

import pytest
import yaml

from tests.support.chart import (
    CHART,
    ROOT,
    RULE_TESTS,
    RULES,
    RUNBOOK,
    alerts,
    inspect_promql,
    metric_contract,
    rules,
    run,
    tool,
)

SEVERITIES = {"warning", "critical"}
MIN_FOR_SECONDS = 5 * 60
SCRAPE_INTERVAL_SECONDS = 30   # chart default (serviceMonitor.interval)


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def default_runbook_url() -> str:
    """Where the shipped rules link: the runbook the agents serve at /runbook, through the API
    server's service proxy as `kubectl proxy` exposes it, for the default install (namespace and
    release `svcprobe`, so the headless Service is `svcprobe`; the chart's port name)."""
    port_name = yaml.safe_load((CHART / "values.yaml").read_text())["service"]["portName"]
    return ("http://localhost:8001/api/v1/namespaces/svcprobe/services/"
            f"svcprobe:{port_name}/proxy/runbook")


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {anchor(m) for m in re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), re.M)}


# --- promtool ----------------------------------------------------------------------------

def test_promtool_check_rules() -> None:
    proc = run([tool("promtool"), "check", "rules", "--lint=all", "--lint-fatal", str(RULES)])
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_unit_tests() -> None:
    proc = run([tool("promtool"), "test", "rules", str(RULE_TESTS)])
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_can_fail(tmp_path: pathlib.Path) -> None:
    """Weakening one alert (no `for:`) must break the unit tests: they really pin behaviour."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "SvcprobeDNSFailingOnNode":
                rule["for"] = "0s"
    (tmp_path / "svcprobe-rules.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "tests").mkdir()
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    proc = run([tool("promtool"), "test", "rules", str(tmp_path / "tests" / RULE_TESTS.name)],
               check=False)
    assert proc.returncode != 0
    assert "SvcprobeDNSFailingOnNode" in proc.stdout + proc.stderr


# Each replaces one alert's expression with a plausible weaker one; the unit tests must fail, in
# the scenario named (promtool prints the failing test's name).
MUTATIONS = {
    "per-service alert on the instant gauge misses a backend down every other sweep": (
        "SvcprobeEndpointUnreachable",
        """count by (cluster, namespace, service) (
             max by (cluster, namespace, service, node) (
               svcprobe_service_failing{check="tcp", path="endpoint"}
             )
           ) >= 2""",
        "intermittent failures every other sweep from two nodes page"),
    "wrong answers on the instant gauge miss answers wrong every other sweep": (
        "SvcprobeDNSWrongAnswers",
        """count by (cluster, path) (
             max by (cluster, namespace, service, path) (
               svcprobe_service_failing{check="dns", result="wrong_answer"}
             )
           ) > 0""",
        "intermittent failures every other sweep from two nodes page"),
    "any failure in the window pages on a single failed sweep": (
        "SvcprobeEndpointUnreachable",
        """count by (cluster, namespace, service) (
             max by (cluster, namespace, service, node) (
               max_over_time(svcprobe_service_failing{check="tcp", path="endpoint"}[10m])
             )
           ) >= 2""",
        "a single failed sweep from two nodes does not page"),
    "agent down pages on top of a NotReady node": (
        "SvcprobeAgentDown", 'up{job="svcprobe"} == 0',
        "agent down pages only on Ready nodes when kube-state-metrics knows the nodes"),
    "a node in Unknown state is not Ready either": (
        "SvcprobeAgentDown",
        """(up{job="svcprobe"} == 0)
           unless on (cluster, node)
           (kube_node_status_condition{condition="Ready", status="false"} == 1)""",
        "agent down pages only on Ready nodes when kube-state-metrics knows the nodes"),
    "agent down must still page without kube-state-metrics": (
        "SvcprobeAgentDown",
        """(up{job="svcprobe"} == 0)
           and on (cluster, node)
           (kube_node_status_condition{condition="Ready", status="true"} == 1)""",
        "agent down, stale sweeps, discovery not synced, watch restarting"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_promtool_unit_tests_catch_weaker_alerts(mutation: str, tmp_path: pathlib.Path) -> None:
    alert, expr, scenario = MUTATIONS[mutation]
    doc = yaml.safe_load(RULES.read_text())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == alert]
    rule["expr"] = expr
    (tmp_path / "svcprobe-rules.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "tests").mkdir()
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    run([tool("promtool"), "check", "rules", str(tmp_path / "svcprobe-rules.yaml")])  # still valid
    proc = run([tool("promtool"), "test", "rules", str(tmp_path / "tests" / RULE_TESTS.name)],
               check=False)
    assert proc.returncode != 0, mutation
    assert f"name: {scenario}," in proc.stdout + proc.stderr, proc.stdout


# --- Conventions -------------------------------------------------------------------------

@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_conventions(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Svcprobe[A-Z][A-Za-z]+", rule["alert"])
    assert seconds(rule["for"]) >= MIN_FOR_SECONDS, "a short blip or a rollout must not page"
    assert rule["labels"]["severity"] in SEVERITIES
    ann = rule["annotations"]
    assert set(ann) == {"summary", "description", "runbook_url"}
    assert ann["summary"].strip() and ann["description"].strip()
    assert ann["runbook_url"] == default_runbook_url() + "#" + rule["alert"].lower()
    assert rule["alert"].lower() in runbook_anchors(), "runbook section missing"


def test_runbook_links_are_explained_and_nothing_points_at_invalid_hosts() -> None:
    header = RULES.read_text().split("\ngroups:")[0]
    assert "kubectl proxy" in header and default_runbook_url() + "#<alert>" in header
    for path in (RULES, RULE_TESTS, CHART / "files" / RULES.name, CHART / "values.yaml",
                 CHART / "README.md", RUNBOOK, ROOT / "dashboards" / "README.md"):
        assert ".invalid" not in path.read_text(), path


def test_every_runbook_section_has_an_alert() -> None:
    names = {r["alert"].lower() for r in alerts()}
    sections = {a for a in runbook_anchors() if a.startswith("svcprobe")}
    assert sections == names


def test_issue_alert_list_is_covered() -> None:
    names = {r["alert"] for r in alerts()}
    assert names >= {
        "SvcprobeDNSFailingOnNode", "SvcprobeDNSFailingClusterWide",   # node vs cluster-wide
        "SvcprobeCoreDNSReplicaFailing",                                # endpoint path
        "SvcprobeDNSWrongAnswers",
        "SvcprobeClusterIPFailingOnNode",                               # kube-proxy
        "SvcprobeNodePortFailingOnNode",                                # its NodePort rules
        "SvcprobeEndpointUnreachable",                                  # from many nodes
        "SvcprobeDNSLatencyHigh",
        "SvcprobeAgentDown", "SvcprobeAgentAbsent", "SvcprobeSweepsStale",
        "SvcprobeDiscoveryWatchFailing",
    }


def test_no_endpoints_is_never_a_tcp_failure() -> None:
    for rule in rules():
        if "svcprobe_tcp_connects_total" in rule["expr"]:
            for m in re.finditer(r"svcprobe_tcp_connects_total\{([^}]*)\}", rule["expr"]):
                assert "no_endpoints" in m.group(1), f"{rule}: no_endpoints must be excluded"


def test_every_alert_has_a_firing_and_a_rollout_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in tests for c in t.get("alert_rule_test", []) if c["exp_alerts"]}
    assert fired == {r["alert"] for r in alerts()}
    (rollout,) = [t for t in tests if "rollout" in t["name"]]
    quiet = {c["alertname"] for c in rollout["alert_rule_test"] if not c["exp_alerts"]}
    assert quiet == {r["alert"] for r in alerts()}
    assert all(not c["exp_alerts"] for c in rollout["alert_rule_test"])
    # Every firing case asserts the rendered runbook_url.
    for t in tests:
        for c in t.get("alert_rule_test", []):
            for a in c["exp_alerts"]:
                assert a["exp_annotations"]["runbook_url"] == \
                    default_runbook_url() + "#" + c["alertname"].lower()


# --- Lint (what pint would check) ------------------------------------------------------------

def test_rule_lint() -> None:
    contract = metric_contract()
    recorded = {r["record"] for r in rules() if "record" in r}
    reports = inspect_promql([r["expr"] for r in rules()])
    problems = []
    for rule, rep in zip(rules(), reports, strict=True):
        name = rule.get("alert") or rule.get("record")
        assert not rep["error"], f"{name}: {rep['error']}"
        for metric in rep["rated"]:
            if metric in contract and contract[metric]["type"] != "counter":
                problems.append(f"{name}: rate()/increase() over non-counter {metric}")
            if metric in recorded:
                problems.append(f"{name}: rate() over recorded series {metric}")
        # Range selectors [5m] and subqueries [10m:30s].
        for window, step in re.findall(r"\[(\d+[smhd])(?::(\d+[smhd]))?\]", rule["expr"]):
            if seconds(window) < 4 * SCRAPE_INTERVAL_SECONDS:
                problems.append(f"{name}: range [{window}] under 4 scrape intervals")
            if step and seconds(step) > SCRAPE_INTERVAL_SECONDS:
                problems.append(f"{name}: subquery step {step} skips scrapes")
        # Aggregations that drop `cluster` would merge clusters in a shared Prometheus.
        for clause, by in re.findall(r"\b(by|on) \(([^)]*)\)", rule["expr"]):
            if "cluster" not in {x.strip() for x in by.split(",")}:
                problems.append(f"{name}: `{clause} ({by})` drops cluster")
        if "record" in rule:
            level = rule["record"].split(":")
            if len(level) != 3:
                problems.append(f"{name}: recording rule name is not level:metric:operations")
    assert not problems, "\n".join(problems)


def test_rule_lint_catches_problems() -> None:
    """The lint above is not vacuous: a gauge under rate() is reported by the inspector."""
    (rep,) = inspect_promql(["sum by (node) (rate(svcprobe_kube_synced[5m]))"])
    assert rep["rated"] == ["svcprobe_kube_synced"]
    assert metric_contract()["svcprobe_kube_synced"]["type"] != "counter"
