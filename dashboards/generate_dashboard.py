#!/usr/bin/env python3
"""Generate dashboards/svcprobe-dashboard.json, the svcprobe Grafana dashboard.

The JSON is the artefact (the chart ships it, users import it); this script is how it is edited.
After a change run::

    python3 dashboards/generate_dashboard.py && dashboards/sync-chart-files.sh

tests/chart/test_dashboard.py fails when the JSON differs from what this script writes, when a
query does not parse or uses a metric or label the agent does not export, and when Grafana's
dashboard-linter complains.

Only the standard library is used, so the script runs without the project's venv.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

OUT = pathlib.Path(__file__).with_name("svcprobe-dashboard.json")
UID = "svcprobe-overview"  # stable: links and bookmarks rely on it
TITLE = "svcprobe / DNS and Service connectivity"
DS = {"type": "prometheus", "uid": "${datasource}"}

# Every query is scoped by these variables. `namespace` is deliberately not here: on
# svcprobe_service_failing it is the *Service's* namespace (see chart/README.md), so only the
# per-Service panels use it.
SEL = 'cluster=~"$cluster", job=~"$job", node=~"$node", instance=~"$instance"'
RI = "$__rate_interval"
IS_OK = 'result="ok"'
NOT_OK = 'result!="ok"'
TCP_FAILED = 'result!~"ok|no_endpoints"'  # no_endpoints is expected, not a failure
TCP_ATTEMPTED = 'result!="no_endpoints"'
SVC_NS = 'namespace=~"$namespace"'
# ALERTS is scoped by cluster only: most svcprobe alerts aggregate over agents and carry no
# job, node or instance (dashboards/.lint exempts this one panel from the job/instance rules).
FIRING_ALERTS = 'ALERTS{alertname=~"Svcprobe.*", alertstate="firing", cluster=~"$cluster"}'
ALERTS_PANEL = "Firing svcprobe alerts"
NOT_SELECTED = 'kind!="selected"'  # "selected" is cluster-wide, the same on every agent
OWNED = 'kind="owned"'
SELECTED = 'kind="selected"'
# Per-node panels draw at most this many lines at a time (topk/bottomk): a 5,000-node cluster
# would otherwise draw 5,000 lines. The node variable narrows them down further.
TOP = 10


def sel(*extra: str) -> str:
    """A label matcher set: the dashboard scope plus `extra` matchers."""
    return "{" + ", ".join((SEL, *extra)) + "}"


class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows top to bottom.

    The panels of a collapsed row are nested in the row (Grafana's format): they keep the
    positions they take when the row is expanded, and the next row follows the collapsed one.
    """

    def __init__(self) -> None:
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict[str, Any]] = []
        self.into = self.panels
        self.current_row: dict[str, Any] | None = None

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str, *, collapsed: bool = False) -> None:
        if self.current_row is not None and self.current_row["collapsed"]:
            self.y = self.current_row["gridPos"]["y"] + 1
        elif self.x:
            self.y += self.row_h
        row: dict[str, Any] = {
            "type": "row",
            "id": self._id(),
            "title": title,
            "collapsed": collapsed,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }
        self.panels.append(row)
        self.current_row = row
        self.into = row["panels"] if collapsed else self.panels
        self.y += 1
        self.x = 0
        self.row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.into.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def target(expr: str, legend: str = "", *, ref: str = "A", table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref}
    if table:
        t.update({"format": "table", "instant": True, "range": False})
    else:
        t.update({"legendFormat": legend or "__auto", "range": True})
    return t


def timeseries(title: str, description: str, targets: list[dict[str, Any]], unit: str,
               *, stack: bool = False, max_: float | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "min": 0,
        "custom": {"drawStyle": "line", "fillOpacity": 10 if stack else 0, "lineWidth": 1,
                   "stacking": {"mode": "normal" if stack else "none"},
                   "spanNulls": False, "showPoints": "never"},
    }
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title: str, description: str, expr: str, unit: str,
         steps: list[tuple[str, float | None]]) -> dict[str, Any]:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, title)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute",
                               "steps": [{"color": c, "value": v} for c, v in steps]},
            },
            "overrides": [],
        },
        "options": {"colorMode": "background", "graphMode": "area", "justifyMode": "auto",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "textMode": "value"},
    }


def table(title: str, description: str, targets: list[dict[str, Any]], unit: str,
          transformations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
        "transformations": transformations,
    }


def dns_fail_ratio(by: str, *extra: str) -> str:
    """Failed / all DNS lookups by `by`; a 0 (not a gap) where nothing failed."""
    fail = f'sum by ({by}) (rate(svcprobe_dns_lookups_total{sel(*extra, NOT_OK)}[{RI}]))'
    total = f"sum by ({by}) (rate(svcprobe_dns_lookups_total{sel(*extra)}[{RI}]))"
    return f"(\n  {fail}\n  or on ({by})\n  0 * {total}\n)\n/ on ({by})\n{total}"


def tcp_fail_ratio(by: str) -> str:
    """Failed / attempted TCP connects by `by`; no_endpoints is neither."""
    fail = f'sum by ({by}) (rate(svcprobe_tcp_connects_total{sel(TCP_FAILED)}[{RI}]))'
    total = f'sum by ({by}) (rate(svcprobe_tcp_connects_total{sel(TCP_ATTEMPTED)}[{RI}]))'
    return f"(\n  {fail}\n  or on ({by})\n  0 * {total}\n)\n/ on ({by})\n{total}"


def quantile(q: float, metric: str, by: str) -> str:
    grouping = f"{by}, le" if by else "le"
    return (f"histogram_quantile({q}, sum by ({grouping}) "
            f"(rate({metric}_bucket{sel()}[{RI}])))")


def top(expr: str, by: str = "", *, k: int = TOP) -> str:
    """The `k` highest series of a per-node expression (per `by` group when given)."""
    grouping = f" by ({by}) " if by else ""
    return f"topk{grouping}({k}, {expr})"


def bottom(expr: str, *, k: int = TOP) -> str:
    """The `k` lowest series of a per-node expression."""
    return f"bottomk({k}, {expr})"


def build() -> dict[str, Any]:
    L = Layout()
    ok, warn, bad = "green", "orange", "red"

    # --- Is it OK? -------------------------------------------------------------------------
    L.row("Overview: is DNS and Service connectivity OK?")
    L.add(stat("DNS success", "Share of all DNS lookups (every form, path and node in scope) "
               "whose answer matched what the Kubernetes API says.",
               f'sum(rate(svcprobe_dns_lookups_total{sel(IS_OK)}[{RI}]))\n'
               f"/\nsum(rate(svcprobe_dns_lookups_total{sel()}[{RI}]))",
               "percentunit", [(bad, None), (warn, 0.95), (ok, 0.999)]), 4, 4)
    L.add(stat("DNS lookup latency p99", "99th percentile of the time a whole lookup takes "
               "(search-list walk included), every form, path and node in scope. "
               "SvcprobeDNSLatencyHigh fires when it stays above 1 s on a path for 15 minutes; "
               "\"How slow is DNS\" below splits it by form and path.",
               quantile(0.99, "svcprobe_dns_lookup_duration_seconds", ""),
               "s", [(ok, None), (warn, 0.5), (bad, 1)]), 4, 4)
    L.add(stat("TCP success", "Share of TCP connects to ClusterIPs and ready endpoints that "
               "succeeded. Services without ready endpoints (no_endpoints) are left out.",
               f'sum(rate(svcprobe_tcp_connects_total{sel(IS_OK)}[{RI}]))\n'
               f'/\nsum(rate(svcprobe_tcp_connects_total{sel(TCP_ATTEMPTED)}[{RI}]))',
               "percentunit", [(bad, None), (warn, 0.95), (ok, 0.999)]), 4, 4)
    L.add(stat("Failing Services", "Services with at least one failing check in the last sweep "
               "of any agent in scope (svcprobe_service_failing).",
               f'count(count by (namespace, service) (svcprobe_service_failing{sel(SVC_NS)})) or vector(0)',
               "none", [(ok, None), (bad, 1)]), 4, 4)
    L.add(stat("Agents reporting", "Agents (one per node) that Prometheus scrapes successfully.",
               f"sum(up{sel()})", "none", [(bad, None), (ok, 1)]), 4, 4)
    L.add(stat("Agents down", "Agents Prometheus fails to scrape.",
               f"count(up{sel()} == 0) or vector(0)", "none", [(ok, None), (bad, 1)]), 4, 4)
    L.add(table(
        ALERTS_PANEL,
        "svcprobe's alerts firing now in the selected cluster (Prometheus's ALERTS series), "
        "one row each with its labels: which alert, how severe and where (path, node, "
        "Service, DNS server). Empty when none fires. The node, job and instance variables do "
        "not apply: most alerts are about a path, a DNS replica or a Service seen from several "
        "nodes. Each alert's runbook_url annotation links to what to do.",
        [target(FIRING_ALERTS, table=True)], "none",
        [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True},
            "indexByName": {"alertname": 0, "severity": 1}}}]), 24, 6)

    # --- What broke? -------------------------------------------------------------------------
    L.row("Findings: what broke, by node")
    L.add(table(
        "Current findings",
        "What each agent concluded from its last sweep: one row per fault and node, naming the "
        "component to look at (kind and suspect; dashboards/runbook.md has a section per kind). "
        "The same suspect on every node: that object (a pod, a CoreDNS replica, a Service's "
        "records). One node only: that node (kube-proxy, its resolver). `svcprobe diagnose` "
        "merges them into cluster verdicts.",
        [target(f"max by (node, severity, kind, suspect) (svcprobe_finding{sel()})", table=True)], "none",
        [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True},
            "indexByName": {"node": 0, "severity": 1, "kind": 2, "suspect": 3}}}]), 24, 7)

    # --- Where? ----------------------------------------------------------------------------
    L.row("Where is DNS failing? (node × path)")
    L.add(table(
        "DNS failure ratio per node and path",
        "Failed / all lookups over the rate interval, one row per node and one column per path: "
        "resolver (the pod's nameservers), cluster_ip (the DNS Service IP), endpoint (each DNS "
        "replica directly), nodelocal (NodeLocal DNSCache). One bad row points at a node; one bad "
        "column at a path.",
        [target(dns_fail_ratio("node, path"), table=True)], "percentunit",
        [{"id": "groupingToMatrix",
          "options": {"columnField": "path", "rowField": "node", "valueField": "Value"}}]), 12, 9)
    L.add(timeseries(
        "DNS failure ratio by node and path (worst 10)",
        "The same ratio over time, for the 10 worst node and path pairs at each moment (pick "
        "nodes with the node variable to see others). A single node's line rising means that "
        "node; all lines rising together means cluster DNS.",
        [target(top(dns_fail_ratio("node, path")), "{{node}} {{path}}")], "percentunit",
        max_=1), 12, 9)
    L.add(timeseries(
        "DNS failures by path and result",
        "Failed lookups per second by path and outcome (nxdomain, nodata, servfail, refused, "
        "timeout, wrong_answer, error).",
        [target(f'sum by (path, result) (rate(svcprobe_dns_lookups_total{sel(NOT_OK)}[{RI}]))',
                "{{path}} {{result}}")], "ops", stack=True), 12, 8)
    L.add(timeseries(
        "DNS failure ratio per DNS replica (endpoint path)",
        "Lookups sent straight to each DNS server replica, by server address: one replica "
        "failing while the others answer is hidden behind the Service IP.",
        [target(dns_fail_ratio("server", 'path="endpoint"'), "{{server}}")],
        "percentunit", max_=1), 12, 8)

    # --- Which Services? ---------------------------------------------------------------------
    L.row("Which Services are failing?")
    L.add(table(
        "Failing Services",
        "Every (Service, check, path, result) that failed in the last sweep, with the number of "
        "agents (nodes) reporting it. Many nodes: the Service or its backends. One node: that "
        "node. Use the agent's /debug/probe?service=NAMESPACE/NAME for the full chain.",
        [target("count by (namespace, service, check, path, result) "
                f'(svcprobe_service_failing{sel(SVC_NS)})',
                table=True)],
        "none",
        [{"id": "organize", "options": {
            "excludeByName": {"Time": True},
            "renameByName": {"Value": "nodes reporting"},
            "indexByName": {"namespace": 0, "service": 1, "check": 2, "path": 3, "result": 4,
                            "Value": 5}}}]), 24, 8)

    # --- How slow? -------------------------------------------------------------------------
    L.row("How slow is DNS, and what does the search list cost?")
    L.add(timeseries(
        "DNS lookup latency by form (p50, p99)",
        "Wall time of a whole lookup, search-list walk included, by name form: short (svc), "
        "namespace (svc.ns), svc (svc.ns.svc), fqdn (absolute).",
        [target(quantile(0.99, "svcprobe_dns_lookup_duration_seconds", "form"), "p99 {{form}}"),
         target(quantile(0.5, "svcprobe_dns_lookup_duration_seconds", "form"), "p50 {{form}}",
                ref="B")], "s"), 8, 8)
    L.add(timeseries(
        "DNS lookup latency by path (p99)",
        "99th percentile lookup time per path. The resolver path is what pods see.",
        [target(quantile(0.99, "svcprobe_dns_lookup_duration_seconds", "path"), "{{path}}")],
        "s"), 8, 8)
    L.add(timeseries(
        "Queries per lookup by form",
        "Average DNS queries on the wire per lookup (search-list amplification under ndots). "
        "Short and namespaced names walk the search list; an absolute FQDN costs one query "
        "per record type.",
        [target(f"sum by (form) (rate(svcprobe_dns_queries_per_lookup_sum{sel()}[{RI}]))\n"
                f"/\nsum by (form) (rate(svcprobe_dns_queries_per_lookup_count{sel()}[{RI}]))",
                "{{form}}")], "none"), 8, 8)

    # --- TCP --------------------------------------------------------------------------------
    L.row("Service connectivity: ClusterIP vs endpoint TCP")
    L.add(timeseries(
        "TCP failure ratio by node and target (worst 10)",
        "Failed / attempted connects per node, for the 10 worst node and target pairs at each "
        "moment: cluster_ip (through the node's Service proxy) and endpoint (straight to ready "
        "pod addresses). ClusterIP failing while endpoints work on the same node points at "
        "kube-proxy on that node.",
        [target(top(tcp_fail_ratio("node, target")), "{{node}} {{target}}")], "percentunit",
        max_=1), 12, 8)
    L.add(timeseries(
        "TCP connect latency (p99)",
        "99th percentile TCP connect time by target and IP family.",
        [target(quantile(0.99, "svcprobe_tcp_connect_duration_seconds", "target, family"),
                "{{target}} {{family}}")], "s"), 12, 8)
    L.add(timeseries(
        "TCP connects by target and result",
        "Connects per second by outcome. no_endpoints (a Service without ready endpoints, "
        "expected during rollouts) is shown but is not a failure.",
        [target(f"sum by (target, result) (rate(svcprobe_tcp_connects_total{sel()}[{RI}]))",
                "{{target}} {{result}}")], "ops", stack=True), 24, 7)

    # --- Agent ------------------------------------------------------------------------------
    share = (f"(\n  sum by (node) (svcprobe_shard_services{sel(OWNED)})\n"
             f"  /\n  sum by (node) (svcprobe_shard_services{sel(SELECTED)})\n)")
    # Collapsed: it answers "is svcprobe itself healthy?", not "is the cluster?".
    L.row("Agent health and its own load", collapsed=True)
    L.add(timeseries(
        "DNS queries sent by svcprobe (top 10 nodes)",
        "Queries per second the agents put on the wire (lookups × queries per lookup), for the "
        "10 nodes sending most: svcprobe's own load on cluster DNS (the total is in \"sent vs "
        "expected\").",
        [target(top(f"sum by (node) (rate(svcprobe_dns_queries_per_lookup_sum{sel()}[{RI}]))"),
                "{{node}}")], "reqps"), 8, 8)
    L.add(timeseries(
        "svcprobe's DNS load: sent vs expected",
        "Queries per second sent by the agents in scope, and the agents' own estimate of what "
        "all agents together send when DNS answers as expected (Services × replicas per "
        "Service + canaries × agents, see the chart README). Sent far above expected means "
        "retries and search-list walks on failing names.",
        [target(f"sum(rate(svcprobe_dns_queries_per_lookup_sum{sel()}[{RI}]))",
                "sent (agents in scope)"),
         target(f"max(svcprobe_expected_cluster_dns_queries_per_second{sel()})",
                "expected, all agents", ref="B")], "reqps"), 8, 8)
    L.add(timeseries(
        "Sharding",
        "Agents sharing the work (found through the chart's headless Service) and, per agent, "
        "the Services it owns and the canaries every agent probes.",
        [target(f"max(svcprobe_shard_peers{sel()})", "peers"),
         target(top(f"sum by (node, kind) (svcprobe_shard_services{sel(NOT_SELECTED)})", "kind"),
                "{{node}} {{kind}}", ref="B")], "none"), 8, 8)
    L.add(timeseries(
        "Each agent's share of the Services",
        "Services an agent owns (probes as one of their sharding.replicas agents) over the "
        "Services selected cluster-wide, per node: the 5 largest and the 5 smallest shares. "
        "With N agents and R replicas each share is about R/N; one agent far off means it sees "
        "a different set of peers.",
        [target(f"{top(share, k=TOP // 2)}\nor\n{bottom(share, k=TOP // 2)}", "{{node}}")],
        "percentunit", max_=1), 8, 8)
    L.add(timeseries(
        "Agents probing each Service",
        "Owned Services summed over the agents in scope, over the Services selected: how many "
        "agents probe an average Service (with every node in scope it should equal "
        "min(sharding.replicas, peers); less means Services nobody probes, from agents that "
        "disagree about their peers). \"svcprobe's DNS load: sent vs expected\" shows what "
        "that coverage costs.",
        [target(f"sum(svcprobe_shard_services{sel(OWNED)})\n"
                f"/\nmax(svcprobe_shard_services{sel(SELECTED)})", "agents per Service")],
        "none"), 8, 8)
    L.add(timeseries(
        "DNS lookups by path",
        "Lookups per second by path, all agents in scope.",
        [target(f"sum by (path) (rate(svcprobe_dns_lookups_total{sel()}[{RI}]))", "{{path}}")],
        "ops", stack=True), 8, 8)
    L.add(timeseries(
        "Budget waits and dropped series",
        "Lookups that waited for the per-node DNS query budget, and failing-Service series not "
        "exported because of the series budget. Both should be 0; raise the budgets or shard "
        "wider if not.",
        [target(top(f"sum by (node) (rate(svcprobe_budget_exhausted_total{sel()}[{RI}]))"),
                "budget waits {{node}}"),
         target(top(f"sum by (node) (rate(svcprobe_series_dropped_total{sel()}[{RI}]))"),
                "dropped series {{node}}", ref="B")], "ops"), 8, 8)
    L.add(timeseries(
        "Sweep duration and lag",
        "Duration of the last completed sweep and how far it overran its interval, for the 10 "
        "slowest nodes.",
        [target(top(f"max by (node) (svcprobe_sweep_duration_seconds{sel()})"),
                "duration {{node}}"),
         target(top(f"max by (node) (svcprobe_sweep_lag_seconds{sel()})"), "lag {{node}}",
                ref="B")],
        "s"), 8, 8)
    L.add(timeseries(
        "Time since last sweep",
        "Seconds since each agent last completed a sweep, for the 10 longest. The "
        "SvcprobeSweepsStale alert fires above 15 minutes.",
        [target(top(f"time() - max by (node) (svcprobe_last_sweep_timestamp_seconds{sel()})"),
                "{{node}}")], "s"), 8, 8)
    L.add(timeseries(
        "Event loop lag",
        "Worst event-loop scheduling delay seen by the last sweep: high values (the agent flags "
        "50 ms) mean the agent stalled itself and its latency numbers are inflated. The 10 "
        "worst nodes.",
        [target(top(f"max by (node) (svcprobe_event_loop_lag_seconds{sel()})"), "{{node}}")],
        "s"), 8, 8)
    L.add(timeseries(
        "Agent CPU wait",
        "Of the time the agent's event loop wanted a CPU during the last sweep, the share it "
        "waited for one. Above 20% other processes on the node are taking the CPU and the "
        "agent's latencies include that wait: check the node before blaming DNS. The 10 worst "
        "nodes.",
        [target(top(f"max by (node) (svcprobe_sweep_cpu_wait_ratio{sel()})"), "{{node}}")],
        "percentunit", max_=1), 8, 8)
    L.add(timeseries(
        "Checks planned per sweep",
        "DNS and TCP checks each agent plans per sweep (its shard plus the canary set), for "
        "the 10 nodes planning most of each kind.",
        [target(top(f"sum by (node, kind) (svcprobe_targets{sel()})", "kind"),
                "{{node}} {{kind}}")],
        "none"), 8, 8)
    L.add(timeseries(
        "Inventory size",
        "Services and endpoint addresses in the agents' inventory (the same on every agent "
        "once synced).",
        [target(f"max(svcprobe_inventory_services{sel()})", "services"),
         target(f"max(svcprobe_inventory_endpoints{sel()})", "endpoints", ref="B")], "none"),
        8, 8)
    L.add(timeseries(
        "Discovery: watch restarts and relists",
        "Watch streams restarted (by resource and reason) and full relists per second. "
        "reason=\"closed\" is routine (the API server ends each watch after its timeout, every "
        "5-10 minutes); any other reason is a failure, and a steady stream of them means API "
        "trouble (SvcprobeDiscoveryWatchFailing).",
        [target(f"sum by (resource, reason) (rate(svcprobe_watch_restarts_total{sel()}[{RI}]))",
                "restart {{resource}} {{reason}}"),
         target(f"sum by (resource) (rate(svcprobe_relists_total{sel()}[{RI}]))",
                "relist {{resource}}", ref="B")], "ops"), 8, 8)
    L.add(timeseries(
        "Kubernetes API synced",
        "1 once an agent's first list+watch has completed; 0 while it has no inventory. "
        "Absent for agents that read a static inventory file. The 10 lowest: any agent not "
        "synced shows first.",
        [target(bottom(f"min by (node) (svcprobe_kube_synced{sel()})"), "{{node}}")], "none",
        max_=1), 8, 8)
    L.add(timeseries(
        "Static inventory reloads and skipped objects",
        "Static inventory (re)loads by result, and objects not taken into the inventory by reason.",
        [target(f"sum by (result) (rate(svcprobe_inventory_reloads_total{sel()}[{RI}]))",
                "reload {{result}}"),
         target(f"sum by (reason) (rate(svcprobe_inventory_objects_skipped_total{sel()}[{RI}]))",
                "skipped {{reason}}", ref="B")], "ops"), 8, 8)
    L.add(table(
        "Agent versions",
        "Agents by svcprobe, Python and dnspython version.",
        [target(f"count by (version, python_version, dnspython_version) (svcprobe_build_info{sel()})",
                table=True)], "none",
        [{"id": "organize", "options": {"excludeByName": {"Time": True},
                                        "renameByName": {"Value": "agents"}}}]), 24, 5)

    def query_var(name: str, label: str, query: str, all_value: str) -> dict[str, Any]:
        return {
            "name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": all_value,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1, "hide": 0, "options": [], "regex": "",
        }

    templating = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [],
         "refresh": 1, "regex": ""},
        query_var("cluster", "Cluster", "label_values(svcprobe_build_info, cluster)", ".*"),
        query_var("job", "Job", 'label_values(svcprobe_build_info{cluster=~"$cluster"}, job)', ".+"),
        query_var("node", "Node",
                  'label_values(svcprobe_build_info{cluster=~"$cluster", job=~"$job"}, node)', ".*"),
        query_var("instance", "Instance",
                  'label_values(svcprobe_build_info{cluster=~"$cluster", job=~"$job", node=~"$node"}, instance)',
                  ".+"),
        query_var("namespace", "Service namespace",
                  'label_values(svcprobe_service_failing{cluster=~"$cluster", job=~"$job"}, namespace)',
                  ".*"),
    ]

    return {
        "uid": UID,
        "title": TITLE,
        "description": "svcprobe: in-cluster DNS and Service connectivity, by node, path and "
                       "Service. Alerts and runbook: dashboards/ in the svcprobe repository.",
        "tags": ["svcprobe", "dns", "kubernetes"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [],
        "panels": L.panels,
        "templating": {"list": templating},
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
