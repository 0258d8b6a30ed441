"""The composition root: builds the agent from settings (`build`) and runs it (`Agent.run`).

Everything that assembles an agent (the CLI, the demo, tests, benchmarks) goes through
`build`, so there is one place that decides how the stages are wired: inventory source ->
assignment (what this agent probes) -> planner -> scheduler -> probes -> results store, with
metrics, the HTTP server and the report reading the store.

`run` supervises its tasks (inventory source, result pruning, sweeps): none of them is
expected to end, so if one does, with an exception or without, it is logged with its
traceback, the others are stopped, and `run` raises `TaskDied` (the CLI exits non-zero: a
DaemonSet pod must not look Completed after a crash).

Shutdown order on SIGTERM (bounded by `shutdown.timeout_seconds`): report not ready,
keep serving for `shutdown.drain_seconds` so the pod leaves its Service, stop sweeping and
watching, close the DNS sockets, stop the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import math
import signal
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agent import __version__, model, planner, server, settings as settings_mod
from agent.checks import CheckResult, TcpCheck
from agent.discovery.source import Source
from agent.discovery.static import StaticSource
from agent.findings import FindingTracker, Topology, analyze
from agent.health import Health
from agent.inventory import manifests
from agent.metrics import Metrics
from agent.probes.budget import TokenBucket
from agent.probes.dns import DnsEngine, server_label
from agent.probes.prober import Prober
from agent.results import ResultStore, SweepStats
from agent.scheduler import Scheduler
from agent.targeting.assignment import Assignment, assign, settings_from
from agent.targeting.convergence import ConvergenceTracker
from agent.transitions import ServiceTransitions

log = logging.getLogger(__name__)


class SourceError(Exception):
    """The inventory cannot be had as configured: a bad static file, or a Kubernetes API
    configuration that does not work (the message says which and why)."""


class LimitError(Exception):
    """The process may not open as many files as the settings need (the message says which)."""


# File descriptors besides the probes: HTTP connections (server.MAX_CONNECTIONS), API
# connections, the inventory file, logs, the event loop's own.
_FD_RESERVE = 64
# DNS servers a node asks, for sizing: its nameservers, the cluster DNS Service IP,
# NodeLocal DNSCache and each CoreDNS replica directly (the endpoint path).
_FD_DNS_SERVERS = 24


def fd_need(s: settings_mod.Settings) -> int:
    """File descriptors the settings may keep open at once: probes in flight (each a TCP
    socket at most), the DNS socket pools, the HTTP server's connections and a reserve."""
    return (s.scheduler.concurrency + s.dns.sockets * _FD_DNS_SERVERS + server.MAX_CONNECTIONS
            + _FD_RESERVE)


def ensure_fd_limit(s: settings_mod.Settings) -> int:
    """Raise the soft open-files limit to the hard one (as Go programs do by default), so a
    node's many endpoints cannot starve the HTTP listener or make checks fail with EMFILE;
    raise LimitError when even the hard limit is below what the settings need. Returns the
    soft limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = fd_need(s)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise LimitError(
            f"the open-files limit is {hard} (hard), but these settings need about {need} "
            f"(scheduler.concurrency {s.scheduler.concurrency} + dns.sockets {s.dns.sockets} x "
            f"{_FD_DNS_SERVERS} DNS servers + {server.MAX_CONNECTIONS} HTTP connections + {_FD_RESERVE}): "
            "raise the limit (ulimit -n, the container runtime's LimitNOFILE) or lower those settings")
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. RLIM_INFINITY hard limits some kernels refuse as soft
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        raise LimitError(f"the open-files limit is {soft} and could not be raised to the {need} these "
                         "settings need")
    return soft


class TaskDied(Exception):
    """A task of the running agent ended; the message names it (its traceback is logged)."""


def plan_settings(s: settings_mod.Settings) -> planner.PlanSettings:
    deny, allow = settings_mod.tcp_networks(s)
    return planner.PlanSettings(
        cluster_domain=s.dns.cluster_domain,
        ndots=s.dns.ndots,
        host_search=s.dns.search,
        servers=tuple(settings_mod.nameserver_addresses(s)),
        forms=s.dns.forms,
        qtypes=s.dns.qtypes,
        srv=s.dns.srv,
        resolvers=s.dns.resolvers,
        ignore_empty_service=s.coredns.ignore_empty_service,
        noendpoints=s.coredns.noendpoints,
        dns_namespaces=frozenset(s.coredns.namespaces),
        node_name=s.node_name,
        host_ip=s.host_ip,
        dns_service=settings_mod.service_refs(s).dns_service,
        node_ports=s.tcp.node_ports,
        load_balancers=s.tcp.load_balancers,
        hostnames_per_service=s.dns.hostnames_per_service,
        ptr=s.dns.ptr,
        tcp=s.tcp.enabled,
        max_endpoints_per_service=s.tcp.max_endpoints_per_service,
        max_checks_per_service=s.limits.checks_per_service,
        max_ports_per_service=s.limits.ports_per_service,
        max_checks_per_sweep=s.limits.checks_per_sweep,
        max_answer_records=s.limits.answer_records,
        tcp_deny=deny,
        tcp_allow=allow,
        own_endpoint=(s.pod_ip, settings_mod.parse_listen(s.listen)[1]) if s.pod_ip else None,
    )


def open_source(s: settings_mod.Settings, health: Health, *, strict: bool = True) -> Source:
    """The inventory source for these settings: the static file when one is given (loaded
    now), else the Kubernetes API (not yet connected: see `connect`). Raises SourceError on
    an unreadable file, or with `strict` on any malformed object in it."""
    label_keys = frozenset(r.key for r in settings_mod.label_selector(s))  # the only labels read
    if not s.inventory.file:
        from agent.discovery.kube import KubeSource  # imports the kubernetes package: only here

        health.note_kube_discovery()
        return KubeSource.from_settings(s.kubernetes, health, label_keys=label_keys)
    source = StaticSource(s.inventory.file, health, reload_seconds=s.inventory.reload_seconds,
                          label_keys=label_keys)
    try:
        result = source.load_initial()
    except manifests.InventoryError as exc:
        raise SourceError(str(exc)) from None
    if result.errors and strict:
        raise SourceError(f"{len(result.errors)} malformed object(s) in the inventory (see above); fix them first")
    return source


async def connect(source: Source) -> None:
    """Check the Kubernetes API configuration now (a bad kubeconfig or a missing
    ServiceAccount is a configuration error, not something to retry); a no-op otherwise."""
    from agent.discovery.client import DiscoveryConfigError
    from agent.discovery.kube import KubeSource

    if isinstance(source, KubeSource):
        try:
            await source.connect()
        except DiscoveryConfigError as exc:
            raise SourceError(f"Kubernetes API: {exc}") from None


def build(s: settings_mod.Settings, *, source: Source | None = None, health: Health | None = None) -> Agent:
    """The agent for these settings, on `source` (default: `open_source(s, health)`)."""
    health = health if health is not None else Health()
    if source is None:
        source = open_source(s, health)
    return Agent(s, source, health)


class Agent:
    """The assembled agent; make it with `build`."""

    def __init__(self, s: settings_mod.Settings, source: Source, health: Health) -> None:
        self.settings = s
        self.source = source
        self.health = health
        self.store = ResultStore()
        self.budget = TokenBucket(s.dns.query_budget_per_second, s.dns.query_budget_burst)
        self.dns = DnsEngine(timeout=s.dns.timeout_seconds, attempts=s.dns.attempts,
                             sockets=s.dns.sockets, budget=self.budget)
        self.prober = Prober(self.dns, tcp_timeout=s.tcp.timeout_seconds)
        self.findings = FindingTracker()
        self.metrics = Metrics(self.store, health, series_budget=s.metrics.series_budget, budget=self.budget,
                               findings=lambda: self.findings.current)
        self.scheduler = Scheduler(self.prober, self.store,
                                   observe=self.metrics.observe, failing_budget=self.metrics.update_failing_budget,
                                   interval=s.scheduler.interval_seconds, spread=s.scheduler.spread,
                                   jitter=s.scheduler.jitter, concurrency=s.scheduler.concurrency)
        self.plan_settings = plan_settings(s)
        self.assignment_settings = settings_from(s)
        self.convergence = ConvergenceTracker(s.dns.grace_seconds)
        self.transitions = ServiceTransitions()
        self._seen: model.Inventory | None = None
        self._assignment: Assignment | None = None
        self._sample_cursor = 0
        self._sweep_no = 0

    def current_assignment(self) -> Assignment:
        """What this agent probes in the current inventory (recomputed when it changed)."""
        inventory = self.source.inventory
        if inventory is not self._seen:
            # The first synced inventory is the baseline: what exists at start counts as changed
            # when the API recorded it (`run` and `check` alike, both come through here).
            if self.health.inventory_synced:
                self.convergence.observe(inventory)
            self._seen, self._assignment = inventory, None
        if self._assignment is None:
            self._assignment = assign(inventory, self.assignment_settings)
        return self._assignment

    def _path_sample(self, t: Assignment) -> frozenset[tuple[str, str]]:
        """Owned Services also asked over the other DNS paths this sweep: recently changed ones
        first (a stale replica gets those wrong), then the others in turn."""
        n = self.settings.paths.sample_services
        owned = [s.key for s in t.services if s.key not in t.canaries]
        if not n or not owned or not t.paths:
            return frozenset()
        owned_set = set(owned)
        # Recently changed first, but never all the slots: with steady churn the others would
        # never be asked of each replica.
        chosen = [k for k in self.convergence.recently_changed() if k in owned_set][: max(1, n // 2)]
        rest = [k for k in owned if k not in chosen]
        take = min(n - len(chosen), len(rest))
        if take:
            start = self._sample_cursor % len(rest)
            chosen += (rest[start:] + rest[:start])[:take]
            self._sample_cursor = start + take
        return frozenset(chosen)

    def _endpoints_due(self, p: planner.Plan, *, every: bool) -> planner.Plan:
        """The plan with only the endpoint checks due this sweep (tcp.endpoint_interval_seconds);
        the others are carried: their last results stand."""
        self._sweep_no += 1
        k = math.ceil(self.settings.tcp.endpoint_interval_seconds / self.settings.scheduler.interval_seconds)
        if every or k <= 1:
            return p
        due: list[TcpCheck] = []
        carried: list[tuple[object, ...]] = []
        # A Service with anything failing has all its endpoints probed: findings compare its IP
        # with its endpoints, and need current evidence of both.
        failing = {(ns, svc) for ns, svc, *_ in self.store.failing_series()}
        for c in p.tcp:
            if (c.path != "endpoint" or c.key not in self.store or (c.namespace, c.service) in failing
                    or zlib.crc32(repr(c.key).encode()) % k == self._sweep_no % k):
                due.append(c)
            else:
                carried.append(c.key)
        return dataclasses.replace(p, tcp=tuple(due), carried=tuple(carried))

    def plan(self, *, every_endpoint: bool = False) -> planner.Plan:
        t = self.current_assignment()
        sample = self._path_sample(t)
        p = planner.plan(self.source.inventory, self.plan_settings, services=t.services, paths=t.paths,
                         path_services=t.canaries | sample, settle_by=self.convergence.settle_by())
        if dict(p.capped) != self.health.capped:
            log.warning("plan cut short by limits (Services affected): %s",
                        ", ".join(f"limits.{k} {v}" for k, v in sorted(p.capped.items())) or "none any more")
        self.health.note_plan(dns=len(p.dns), tcp=len(p.tcp), not_probed=p.not_probed_ports, capped=p.capped)
        self._account_share(t, p)
        p = self._endpoints_due(p, every=every_endpoint)
        # DNS servers that are no longer asked (departed CoreDNS pods): close their sockets
        # and drop their per-server series. The others get fresh source ports for the sweep.
        servers = {s for c in p.dns for s in c.servers}
        self.dns.retain_servers(servers)
        self.dns.renew_sockets()
        self.metrics.retain_servers({server_label(s) for s in servers})
        return p

    def _account_share(self, t: Assignment, p: planner.Plan) -> None:
        zone = self.settings.dns.cluster_domain
        per_service: dict[tuple[str, str], int] = {}
        every_agent_q = 0  # the canaries, and the path sample of owned Services: every agent asks
        for c in p.dns:
            key = (c.namespace, c.service)
            if key in t.canaries or c.path != "resolver":
                every_agent_q += planner.expected_queries(c, zone)
            else:
                per_service[key] = per_service.get(key, 0) + planner.expected_queries(c, zone)
        owned_q = list(per_service.values())
        avg = sum(owned_q) / len(owned_q) if owned_q else 0.0
        replicas = self.assignment_settings.replicas
        copies = min(replicas, len(t.peers)) if replicas else len(t.peers)
        per_sweep = avg * t.selected * max(copies, 1) + every_agent_q * max(len(t.peers), 1)
        self.health.note_share(peers=len(t.peers), selected=t.selected, owned=t.owned, canaries=len(t.canaries),
                               expected_qps=per_sweep / self.settings.scheduler.interval_seconds)

    def plan_for(self, service: model.Service) -> planner.Plan:
        t = self.current_assignment()
        return planner.plan(self.source.inventory, self.plan_settings, services=[service], paths=t.paths,
                            path_services={service.key})

    def topology(self) -> Topology:
        """What the findings need to know of cluster DNS and of the endpoints' pods."""
        inventory = self.source.inventory
        key = self.assignment_settings.dns_service
        svc = inventory.services.get(key) if key else None
        pods: dict[str, str] = {}
        ready: set[str] = set()
        for sl in inventory.slices_of(svc) if svc is not None else ():
            for ep in sl.endpoints:
                if ep.addresses:
                    address = str(ep.addresses[0])
                    if ep.pod:
                        pods[address] = f"{sl.namespace}/{ep.pod}"
                    if ep.ready:
                        ready.add(address)
        return Topology(
            dns_service=key,
            dns_service_ips=frozenset(str(ip) for ip in svc.cluster_ips) if svc is not None else frozenset(),
            replica_pods=pods,
            ready_replicas=len(ready) if svc is not None else None,
            pod_of=lambda ns, name, address: inventory.pod_of((ns, name), address),
            node=self.settings.node_name,
        )

    def after_sweep(self, stats: SweepStats | None = None, *, log_changes: bool = True) -> None:
        """Findings from the latest results, and a log event for each Service that started
        failing or recovered. A bug here is logged, never the end of the agent."""
        try:
            topology = dataclasses.replace(self.topology(), fresh_since=stats.started_at if stats else 0.0)
            self.findings.update(analyze(self.store.latest(), topology), log_changes=log_changes)
            if log_changes:
                self.transitions.update(self.store.failing_series())
        except Exception:
            log.exception("findings could not be made from this sweep's results; the results stand")

    def context(self) -> server.Context:
        return server.Context(store=self.store, health=self.health, metrics=self.metrics,
                              inventory=lambda: self.source.inventory, plan_for=self.plan_for,
                              prober=self.prober, findings=lambda: self.findings.current,
                              agent=self.identity())

    def identity(self) -> dict[str, str | None]:
        """Which agent answers (the JSON API, diagnose): its node, pod and version."""
        s = self.settings
        return {"node": s.node_name or None, "pod": f"{s.pod_namespace}/{s.pod_name}" if s.pod_name else None,
                "pod_ip": s.pod_ip or None, "version": __version__}

    async def check_once(self, *, on_plan: Callable[[int], None] | None = None,
                         on_result: Callable[[CheckResult], None] | None = None) -> SweepStats:
        """One sweep as fast as the limits allow (`svcprobe check`); `on_plan` is told how many
        checks it has, `on_result` gets each result."""
        try:
            p = self.plan(every_endpoint=True)
            if on_plan is not None:
                on_plan(len(p))
            stats = await self.scheduler.sweep(p, window=0, on_result=on_result)
        finally:
            await self.dns.close()
        self.after_sweep(stats, log_changes=False)  # the report says it all
        return stats

    async def _forget_removed(self) -> None:
        """Drop results of Services this agent no longer probes as soon as the inventory says so.

        (Checks that changed within a Service still probed are replaced at the next sweep.)
        """
        while True:
            await self.source.changed.wait()
            self.source.changed.clear()
            self.store.retain_services(s.key for s in self.current_assignment().services)

    async def _sweep_when_synced(self) -> None:
        while not self.health.inventory_synced:  # no sweeps over a half-listed cluster
            await asyncio.sleep(0.2)
        # What exists after the first sync (the inventory, imports) lives as long as the
        # process: keep it out of the garbage collector's scans, which otherwise stall the
        # loop for 100+ ms at 10,000 Services and skew probe timings.
        gc.collect()
        gc.freeze()
        await self.scheduler.run_forever(self.plan, self.after_sweep)

    async def run(self, *, stop: asyncio.Event | None = None,
                  on_listening: Callable[[str, int], Awaitable[None] | None] | None = None) -> None:
        """Serve and sweep until `stop` is set or SIGTERM/SIGINT arrives.

        Raises TaskDied, after a normal shutdown, when one of its tasks ended on its own.
        """
        s = self.settings
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)

        host, port = settings_mod.parse_listen(s.listen)
        runner = server.make_runner(server.make_app(self.context()))
        await runner.setup()
        try:
            site = server.BoundedTCPSite(runner, host, port, on_shed=self.health.note_http_shed)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound = runner.addresses[0] if runner.addresses else (host, port)
        log.info("listening on %s:%s", bound[0], bound[1])

        tasks = [
            asyncio.create_task(self.source.run(), name="svcprobe-inventory"),
            asyncio.create_task(self._forget_removed(), name="svcprobe-forget"),
            asyncio.create_task(self._sweep_when_synced(), name="svcprobe-scheduler"),
        ]
        stopper = asyncio.create_task(stop.wait(), name="svcprobe-stop")
        died: list[str] = []
        try:
            if on_listening is not None:
                maybe = on_listening(str(bound[0]), int(bound[1]))
                if maybe is not None:
                    await maybe
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper:
                    died.append(_report_death(t))
        finally:
            try:
                async with asyncio.timeout(s.shutdown.timeout_seconds):
                    await self._shutdown(tasks, runner, drain=not died)
            except TimeoutError:
                log.error("shutdown took longer than %.0fs; giving up on the rest", s.shutdown.timeout_seconds)
            stopper.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
        if died:
            raise TaskDied("; ".join(died))

    async def _shutdown(self, tasks: list[asyncio.Task[None]], runner: web.AppRunner, *, drain: bool) -> None:
        self.health.note_draining()
        if drain:
            log.info("shutting down: not ready; draining for %.1fs", self.settings.shutdown.drain_seconds)
            await asyncio.sleep(self.settings.shutdown.drain_seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.dns.close()
        await runner.cleanup()
        log.info("stopped")


def _report_death(task: asyncio.Task[Any]) -> str:
    """Log why a task that should run forever ended; returns a one-line summary."""
    name = task.get_name()
    if task.cancelled():
        log.error("%s was cancelled; stopping the agent", name)
        return f"{name} was cancelled"
    exc = task.exception()
    if exc is None:
        log.error("%s returned, though it should run until shutdown; stopping the agent", name)
        return f"{name} returned"
    log.error("%s died; stopping the agent", name, exc_info=exc)
    return f"{name} died: {exc.__class__.__name__}: {exc}"
