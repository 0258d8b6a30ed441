"""Every PromQL expression in the rules and the dashboard parses (Prometheus's own parser,
built into svcprobe-promql-inspect) and uses only metric names and labels from
docs/metrics.md, plus the scrape labels node, job, instance, pod, namespace, cluster, and a few
series that are not the agent's (Prometheus's up and ALERTS, kube-state-metrics' node readiness).

This is what keeps rules and dashboard from silently going dead when a metric is renamed
(the coredns-mixin forward alerts failure mode).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart import (
    TARGET_LABELS,
    dashboard_queries,
    grafana_expand,
    inspect_promql,
    metric_contract,
    rule_queries,
    rules,
)

# Series that are not the agent's but are fair to use, with their labels: Prometheus's own
# per-target `up`, and kube-state-metrics' node readiness (SvcprobeAgentDown leaves agents on
# nodes that are not Ready to the cluster's node alerts; `node` is the node's name there too).
PROMETHEUS_SERIES = {
    "up": set(),
    "kube_node_status_condition": {"node", "condition", "status"},
}


def alerts_labels(contract: dict[str, dict[str, Any]]) -> set[str]:
    """ALERTS (Prometheus's series of pending and firing alerts, read by the dashboard) carries
    alertname, alertstate, the alert's own labels and whatever its expression kept."""
    own = {label for r in rules() if "alert" in r for label in r.get("labels", {})}
    kept = {label for info in contract.values() for label in info["labels"]}
    return {"alertname", "alertstate"} | own | kept


def contract_problems(where: str, expr: str, report: dict[str, Any],
                      contract: dict[str, dict[str, Any]],
                      recorded: dict[str, set[str]]) -> list[str]:
    if report["error"]:
        return [f"{where}: does not parse: {report['error']}\n  {expr}"]
    problems = []
    known: dict[str, set[str]] = {name: info["labels"] for name, info in contract.items()}
    known.update(recorded)
    known.update(PROMETHEUS_SERIES)
    known["ALERTS"] = alerts_labels(contract)
    in_scope: set[str] = set(TARGET_LABELS)
    for sel in report["selectors"]:
        metric = sel["metric"]
        if not metric:
            problems.append(f"{where}: selector without a metric name")
            continue
        if metric not in known:
            problems.append(f"{where}: unknown metric {metric}")
            continue
        allowed = known[metric] | TARGET_LABELS
        for label in sel["labels"]:
            if label not in allowed:
                problems.append(f"{where}: {metric} has no label {label!r}")
        in_scope |= known[metric]
    for label in report["grouping"]:
        if label not in in_scope | set(report["produced"]):
            problems.append(f"{where}: groups or matches on unknown label {label!r}")
    return problems


def recorded_series() -> dict[str, set[str]]:
    """Recording rules' outputs, with the labels their `by (...)` keeps."""
    out = {}
    reports = inspect_promql([r["expr"] for r in rules() if "record" in r])
    for rule, rep in zip([r for r in rules() if "record" in r], reports, strict=True):
        labels = set(rep["grouping"]) | {lbl for s in rep["selectors"] for lbl in s["labels"]}
        out[rule["record"]] = labels
    return out


def test_metric_contract_is_parsed() -> None:
    contract = metric_contract()
    assert contract["svcprobe_dns_lookups_total"]["labels"] == {"form", "qtype", "path", "server", "result"}
    assert contract["svcprobe_dns_lookup_duration_seconds_bucket"]["labels"] == {"form", "path", "le"}
    assert contract["svcprobe_service_failing"]["labels"] == {"namespace", "service", "check", "path", "result"}
    assert contract["svcprobe_kube_synced"]["type"] == "gauge"
    assert len(contract) >= 25


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_queries_parse_and_use_only_exported_names(source: str) -> None:
    queries = rule_queries() if source == "rules" else \
        [(w, grafana_expand(e)) for w, e in dashboard_queries()]
    assert len(queries) >= 15
    contract = metric_contract()
    recorded = recorded_series()
    reports = inspect_promql([e for _, e in queries])
    problems = []
    for (where, expr), rep in zip(queries, reports, strict=True):
        problems += contract_problems(where, expr, rep, contract, recorded)
    assert not problems, "\n".join(problems)


def test_dashboard_does_not_depend_on_recording_rules() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    for where, expr in dashboard_queries():
        assert not any(name in expr for name in recorded), where


@pytest.mark.parametrize(("expr", "expected"), [
    ("sum(rate(svcprobe_dns_lookup_total[5m]))", "unknown metric svcprobe_dns_lookup_total"),
    ('svcprobe_tcp_connects_total{path="endpoint"}', "has no label 'path'"),
    ("sum by (service) (rate(svcprobe_dns_lookups_total[5m]))", "unknown label 'service'"),
    ("sum(rate(svcprobe_dns_lookups_total[5m])", "does not parse"),
])
def test_contract_check_catches_mistakes(expr: str, expected: str) -> None:
    (rep,) = inspect_promql([expr])
    problems = contract_problems("t", expr, rep, metric_contract(), {})
    assert any(expected in p for p in problems), problems


def test_grafana_variables_are_all_expanded() -> None:
    for where, expr in dashboard_queries():
        expanded = grafana_expand(expr)
        assert "$" not in expanded.replace("$1", ""), where
