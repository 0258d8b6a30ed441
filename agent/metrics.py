"""Prometheus exposition, exactly per docs/metrics.md.

Histograms and counters carry only low-cardinality labels and are updated as results come
in. Everything that describes current state (failing Services, sweep and inventory health)
is produced by a custom collector from the results store on every scrape, so a Service
that disappears takes its series with it.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from agent import __version__
from agent.checks import CheckResult, DnsCheck
from agent.findings import Finding, Kind
from agent.health import Health
from agent.planner import CAP_REASONS
from agent.probes.budget import TokenBucket
from agent.results import ResultStore

DNS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)
TCP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
QUERY_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24)
_DNSPYTHON_VERSION = importlib.metadata.version("dnspython")
LOOKUP_LABELS = ("form", "qtype", "path", "server", "result")  # of svcprobe_dns_lookups_total
# svcprobe_finding series at most (most severe first); svcprobe_findings counts them all.
FINDING_SERIES = 50


class _StateCollector(Collector):
    def __init__(self, owner: Metrics) -> None:
        self.owner = owner

    def describe(self) -> Iterator[Metric]:
        return iter(())  # state families vary; describing none keeps registration cheap

    def collect(self) -> Iterator[Metric]:
        o = self.owner
        store, health = o.store, o.health
        failing = GaugeMetricFamily(
            "svcprobe_service_failing",
            "1 for each Service check path and result failing in the latest results",
            labels=["namespace", "service", "check", "path", "result"],
        )
        for key in store.failing_series()[: o.failing_budget]:
            failing.add_metric(list(key), 1)
        yield failing

        findings = o.findings()
        current = GaugeMetricFamily("svcprobe_finding", "1 for each current finding (most severe first, at most "
                                    f"{FINDING_SERIES})", labels=["kind", "severity", "suspect"])
        for f in findings[:FINDING_SERIES]:
            current.add_metric([f.kind.value, f.severity.value, str(f.suspect)], 1)
        yield current
        counts = GaugeMetricFamily("svcprobe_findings", "Current findings by kind", labels=["kind"])
        for finding_kind in Kind:
            counts.add_metric([finding_kind.value], sum(1 for f in findings if f.kind is finding_kind))
        yield counts

        info = GaugeMetricFamily("svcprobe_build_info", "What is running",
                                 labels=["version", "python_version", "dnspython_version"])
        info.add_metric([__version__, platform.python_version(), _DNSPYTHON_VERSION], 1)
        yield info

        sweep = store.last_sweep
        yield CounterMetricFamily("svcprobe_sweeps", "Completed sweeps", value=store.sweeps)
        if sweep is not None:
            yield GaugeMetricFamily("svcprobe_sweep_duration_seconds", "Duration of the last completed sweep",
                                    value=sweep.duration)
            yield GaugeMetricFamily("svcprobe_last_sweep_timestamp_seconds",
                                    "Unix time the last sweep completed", value=sweep.finished_at)
            yield GaugeMetricFamily("svcprobe_sweep_lag_seconds", "How far the last sweep overran its interval",
                                    value=sweep.lag)
            yield GaugeMetricFamily("svcprobe_event_loop_lag_seconds",
                                    "Worst event-loop scheduling delay during the last sweep", value=sweep.loop_lag)
            if sweep.cpu_wait_ratio is not None:
                yield GaugeMetricFamily("svcprobe_sweep_cpu_wait_ratio",
                                        "Share of the time the event-loop thread wanted a CPU during the last "
                                        "sweep that it spent waiting for one", value=sweep.cpu_wait_ratio)
        targets = GaugeMetricFamily("svcprobe_targets", "Checks planned per sweep", labels=["kind"])
        for kind, n in sorted(health.planned.items()):
            targets.add_metric([kind], n)
        yield targets
        capped = GaugeMetricFamily("svcprobe_plan_capped_services",
                                   "Services whose checks a limit cut short in the current plan", labels=["limit"])
        for limit in CAP_REASONS:
            capped.add_metric([limit], health.capped.get(limit, 0))
        yield capped
        yield GaugeMetricFamily("svcprobe_inventory_services", "Services in the inventory",
                                value=health.inventory_services)
        yield GaugeMetricFamily("svcprobe_inventory_endpoints", "Endpoint addresses in the inventory",
                                value=health.inventory_endpoints)
        reloads = CounterMetricFamily("svcprobe_inventory_reloads", "Static inventory (re)loads", labels=["result"])
        for result, n in sorted(health.reloads.items()):
            reloads.add_metric([result], n)
        yield reloads
        skipped = CounterMetricFamily("svcprobe_inventory_objects_skipped",
                                      "Objects not taken into the inventory", labels=["reason"])
        for reason, n in sorted(health.skipped.items()):
            skipped.add_metric([reason], n)
        yield skipped
        if health.kube_discovery:  # absent with a static inventory: there is nothing to sync
            yield GaugeMetricFamily("svcprobe_kube_synced", "1 once Kubernetes list+watch completed its first sync",
                                    value=1 if health.kube_synced else 0)
        restarts = CounterMetricFamily("svcprobe_watch_restarts", "Watch streams restarted",
                                       labels=["resource", "reason"])
        for (resource, reason), n in sorted(health.watch_restarts.items()):
            restarts.add_metric([resource, reason], n)
        yield restarts
        relists = CounterMetricFamily("svcprobe_relists", "Full relists", labels=["resource"])
        for resource, n in sorted(health.relists.items()):
            relists.add_metric([resource], n)
        yield relists
        yield GaugeMetricFamily("svcprobe_shard_peers", "Agents sharing the work, this one included",
                                value=health.shard_peers)
        share = GaugeMetricFamily("svcprobe_shard_services", "Services by role for this agent", labels=["kind"])
        share.add_metric(["selected"], health.shard_selected)
        share.add_metric(["owned"], health.shard_owned)
        share.add_metric(["canary"], health.shard_canaries)
        yield share
        yield GaugeMetricFamily("svcprobe_expected_cluster_dns_queries_per_second",
                                "DNS queries per second all agents together send when DNS answers as expected",
                                value=health.expected_cluster_qps)
        waits = o.budget.waits if o.budget is not None else 0
        yield CounterMetricFamily("svcprobe_budget_exhausted",
                                  "Lookups that waited because the DNS query budget was empty", value=waits)
        shed = CounterMetricFamily("svcprobe_http_connections_shed",
                                   "HTTP connections closed to stay within the connection limit", labels=["reason"])
        for reason, n in sorted(health.http_shed.items()):
            shed.add_metric([reason], n)
        yield shed
        yield CounterMetricFamily("svcprobe_series_dropped",
                                  "Failing-Service series not exported because of the series budget",
                                  value=store.series_dropped)


class _WithoutCreated(Collector):
    """The histograms and counters of `inner`, without their `_created` series: those would
    add one series per child and carry no information here. (prometheus_client can only
    switch them off for the whole process.)"""

    def __init__(self, inner: CollectorRegistry) -> None:
        self.inner = inner

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():  # fresh objects on every collect
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class Metrics:
    def __init__(self, store: ResultStore, health: Health, *, series_budget: int,
                 budget: TokenBucket | None = None, findings: Callable[[], list[Finding]] = list) -> None:
        self.store, self.health, self.budget = store, health, budget
        self.findings = findings
        self.series_budget = series_budget
        self.failing_budget = series_budget
        r = CollectorRegistry(auto_describe=False)  # the live histograms and counters
        self.dns_duration = Histogram("svcprobe_dns_lookup_duration_seconds",
                                      "Time of one lookup including its whole search walk",
                                      ["form", "path"], buckets=DNS_BUCKETS, registry=r)
        self.dns_lookups = Counter("svcprobe_dns_lookups", "DNS lookups by outcome",
                                   LOOKUP_LABELS, registry=r)
        self.dns_queries = Histogram("svcprobe_dns_queries_per_lookup",
                                     "Queries on the wire per lookup (search-list amplification)",
                                     ["form"], buckets=QUERY_BUCKETS, registry=r)
        self.resolver_failures = Counter("svcprobe_dns_resolver_failures",
                                         "Lookups of relative names that fail as a C library walks them",
                                         ["resolver", "form"], registry=r)
        self.tcp_duration = Histogram("svcprobe_tcp_connect_duration_seconds", "TCP connect time",
                                      ["target", "family"], buckets=TCP_BUCKETS, registry=r)
        self.tcp_connects = Counter("svcprobe_tcp_connects", "TCP connects by outcome",
                                    ["target", "family", "result"], registry=r)
        self.registry = CollectorRegistry(auto_describe=False)  # what /metrics exports
        self.registry.register(_WithoutCreated(r))
        self.registry.register(_StateCollector(self))

    def observe(self, result: CheckResult) -> None:
        c = result.check
        if isinstance(c, DnsCheck):
            self.dns_duration.labels(c.form, c.path).observe(result.duration_seconds)
            self.dns_lookups.labels(c.form, c.qtype, c.path, result.server, result.result).inc()
            self.dns_queries.labels(c.form).observe(result.queries)
            if result.result != "ok" and not c.name.endswith("."):
                for resolver, outcome in result.resolver_results().items():
                    if outcome != "ok":
                        self.resolver_failures.labels(resolver, c.form).inc()
        else:
            if result.result != "no_endpoints":
                self.tcp_duration.labels(c.path, c.family).observe(result.duration_seconds)
            self.tcp_connects.labels(c.path, c.family, result.result).inc()

    def retain_servers(self, servers: set[str]) -> None:
        """Remove the lookup counters of DNS servers that are no longer asked (a CoreDNS pod
        that went away), so they neither go stale nor fill the series budget. `servers` are
        labels as the results carry them; "" (nothing was sent) is always kept. Once a sweep,
        from the counter's own children: nothing extra is kept per result."""
        gone = {tuple(s.labels[n] for n in LOOKUP_LABELS)
                for family in self.dns_lookups.collect() for s in family.samples
                if s.labels["server"] and s.labels["server"] not in servers}
        for labels in gone:
            self.dns_lookups.remove(*labels)

    def fixed_series(self) -> int:
        """Series exported besides the failing-Service gauge."""
        n = 0
        for family in self.registry.collect():
            if family.name != "svcprobe_service_failing":
                n += len(family.samples)
        return n

    def update_failing_budget(self) -> int:
        """Recompute how many failing-Service series fit into the series budget. The failing
        gauge is what alerts are built on: it always keeps at least half of the budget, even
        when the fixed series (per-server counters, say) have grown past their share."""
        self.failing_budget = max(self.series_budget // 2, self.series_budget - self.fixed_series())
        return self.failing_budget

    def render(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
