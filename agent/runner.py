"""The composition root: builds the agent from settings and runs it.

Shutdown order on SIGTERM (bounded by `shutdown.timeout_seconds`): report not ready,
keep serving for `shutdown.drain_seconds` so the pod leaves its Service, stop sweeping and
watching, close the DNS sockets, stop the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent import model, planner, selection, server, settings as settings_mod, targets
from agent.changes import ChangeTracker
from agent.health import Health
from agent.inventory.source import Source
from agent.metrics import Metrics
from agent.prober import Prober
from agent.probes.dns import DnsEngine
from agent.ratelimit import TokenBucket
from agent.results import ResultStore, SweepStats
from agent.scheduler import Scheduler

log = logging.getLogger(__name__)


def plan_settings(s: settings_mod.Settings) -> planner.PlanSettings:
    return planner.PlanSettings(
        cluster_domain=s.dns.cluster_domain,
        ndots=s.dns.ndots,
        host_search=s.dns.search,
        servers=tuple(settings_mod.nameserver_addresses(s)),
        forms=s.dns.forms,
        qtypes=s.dns.qtypes,
        srv=s.dns.srv,
        tcp=s.tcp.enabled,
        max_endpoints_per_service=s.tcp.max_endpoints_per_service,
    )


LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")


def target_settings(s: settings_mod.Settings) -> targets.TargetSettings:
    """Selection, sharding and path settings, validated; raises ConfigError naming the key."""
    def ref(text: str, key: str) -> tuple[str, str]:
        try:
            return selection.parse_ref(text, key)
        except selection.SelectorError as exc:
            raise settings_mod.ConfigError(str(exc)) from None

    try:
        selector = selection.parse_selector(s.selection.label_selector)
    except selection.SelectorError as exc:
        raise settings_mod.ConfigError(f"selection.label_selector: {exc}") from None
    peers = s.sharding.peers_service or (f"{s.pod_namespace}/svcprobe" if s.pod_namespace else "")
    nodelocal = None
    if s.paths.nodelocal_address:
        nodelocal = settings_mod.parse_nameserver(s.paths.nodelocal_address, "paths.nodelocal_address")
    else:
        # Detected: NodeLocal DNSCache listens on a link-local address that the kubelet then
        # hands to pods as their nameserver (169.254.20.10 by convention).
        for ns in settings_mod.nameserver_addresses(s):
            if ipaddress.ip_address(ns[0]) in LINK_LOCAL:
                nodelocal = ns
                break
    return targets.TargetSettings(
        selection=selection.Selection(frozenset(s.selection.namespaces), frozenset(s.selection.exclude_namespaces),
                                      selector),
        canaries=tuple(ref(c, "selection.canaries") for c in s.selection.canaries),
        dns_service=ref(s.paths.dns_service, "paths.dns_service") if s.paths.dns_service else None,
        peers_service=ref(peers, "sharding.peers_service") if peers else None,
        me=s.pod_ip,
        replicas=s.sharding.replicas,
        cluster_ip_path=s.paths.cluster_ip,
        endpoint_path=s.paths.endpoints,
        nodelocal=nodelocal,
    )


class Agent:
    def __init__(self, s: settings_mod.Settings, source: Source, health: Health) -> None:
        self.settings = s
        self.source = source
        self.health = health
        self.store = ResultStore()
        self.budget = TokenBucket(s.dns.query_budget_per_second, s.dns.query_budget_burst)
        self.dns = DnsEngine(timeout=s.dns.timeout_seconds, attempts=s.dns.attempts,
                             sockets=s.dns.sockets, budget=self.budget)
        self.prober = Prober(self.dns, tcp_timeout=s.tcp.timeout_seconds)
        self.metrics = Metrics(self.store, health, series_budget=s.metrics.series_budget, budget=self.budget)
        self.scheduler = Scheduler(self.prober, self.store, self.metrics,
                                   interval=s.scheduler.interval_seconds, spread=s.scheduler.spread,
                                   jitter=s.scheduler.jitter, concurrency=s.scheduler.concurrency)
        self.plan_settings = plan_settings(s)
        self.target_settings = target_settings(s)
        self.changes = ChangeTracker(s.dns.grace_seconds)
        self._seen: model.Inventory | None = None
        self._targets: targets.Targets | None = None

    def targets(self) -> targets.Targets:
        inventory = self.source.inventory
        if inventory is not self._seen:
            # The first synced inventory is the baseline: what exists at start counts as settled.
            if self.health.inventory_synced:
                self.changes.observe(inventory)
            self._seen, self._targets = inventory, None
        if self._targets is None:  # sharding is recomputed only when the inventory changed
            self._targets = targets.choose(inventory, self.target_settings)
        return self._targets

    def plan(self) -> planner.Plan:
        t = self.targets()
        p = planner.plan(self.source.inventory, self.plan_settings, services=t.services, paths=t.paths,
                         path_services=t.canaries, settle_by=self.changes.settle_by())
        self.health.targets.update(dns=len(p.dns), tcp=len(p.tcp), not_probed=p.not_probed_ports)
        self._account_share(t, p)
        return p

    def _account_share(self, t: targets.Targets, p: planner.Plan) -> None:
        h = self.health
        h.shard_peers, h.shard_selected, h.shard_owned, h.shard_canaries = (
            len(t.peers), t.selected, t.owned, len(t.canaries))
        zone = self.settings.dns.cluster_domain
        per_service: dict[tuple[str, str], int] = {}
        for c in p.dns:
            per_service[(c.namespace, c.service)] = per_service.get((c.namespace, c.service), 0) + \
                planner.expected_queries(c, zone)
        canary_q = sum(q for k, q in per_service.items() if k in t.canaries)
        owned_q = [q for k, q in per_service.items() if k not in t.canaries]
        avg = sum(owned_q) / len(owned_q) if owned_q else 0.0
        copies = min(self.target_settings.replicas, len(t.peers)) if self.target_settings.replicas else len(t.peers)
        per_sweep = avg * t.selected * max(copies, 1) + canary_q * max(len(t.peers), 1)
        h.expected_cluster_qps = per_sweep / self.settings.scheduler.interval_seconds

    def plan_for(self, service: model.Service) -> planner.Plan:
        t = self.targets()
        return planner.plan(self.source.inventory, self.plan_settings, services=[service], paths=t.paths,
                            path_services={service.key})

    def context(self) -> server.Context:
        return server.Context(store=self.store, health=self.health, metrics=self.metrics,
                              inventory=lambda: self.source.inventory, plan_for=self.plan_for,
                              prober=self.prober)

    async def check_once(self) -> SweepStats:
        """One sweep as fast as the limits allow (`svcprobe check`)."""
        try:
            return await self.scheduler.sweep(self.plan(), window=0)
        finally:
            await self.dns.close()

    async def _forget_removed(self) -> None:
        """Drop results of Services this agent no longer probes as soon as the inventory says so.

        (Checks that changed within a Service still probed are replaced at the next sweep.)
        """
        while True:
            await self.source.changed.wait()
            self.source.changed.clear()
            self.store.retain_services(s.key for s in self.targets().services)

    async def _sweep_when_synced(self) -> None:
        while not self.health.inventory_synced:  # no sweeps over a half-listed cluster
            await asyncio.sleep(0.2)
        # What exists after the first sync (the inventory, imports) lives as long as the
        # process: keep it out of the garbage collector's scans, which otherwise stall the
        # loop for 100+ ms at 10,000 Services and skew probe timings.
        gc.collect()
        gc.freeze()
        await self.scheduler.run_forever(self.plan)

    async def run(self, *, stop: asyncio.Event | None = None,
                  on_listening: Callable[[str, int], Awaitable[None] | None] | None = None) -> None:
        """Serve and sweep until `stop` is set or SIGTERM/SIGINT arrives."""
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
        site = server.BoundedTCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        log.info("listening on %s:%s", bound[0], bound[1])
        if on_listening is not None:
            maybe = on_listening(str(bound[0]), int(bound[1]))
            if maybe is not None:
                await maybe

        tasks = [
            asyncio.create_task(self.source.run(), name="svcprobe-inventory"),
            asyncio.create_task(self._forget_removed(), name="svcprobe-forget"),
            asyncio.create_task(self._sweep_when_synced(), name="svcprobe-scheduler"),
        ]
        stopper = asyncio.create_task(stop.wait(), name="svcprobe-stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and not t.cancelled() and t.exception() is not None:
                    log.error("%s stopped: %r", t.get_name(), t.exception())
        finally:
            try:
                async with asyncio.timeout(s.shutdown.timeout_seconds):
                    await self._shutdown(tasks, runner)
            except TimeoutError:
                log.error("shutdown took longer than %.0fs; giving up on the rest", s.shutdown.timeout_seconds)
            stopper.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _shutdown(self, tasks: list[asyncio.Task[None]], runner: web.AppRunner) -> None:
        self.health.draining = True
        log.info("shutting down: not ready; draining for %.1fs", self.settings.shutdown.drain_seconds)
        await asyncio.sleep(self.settings.shutdown.drain_seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.dns.close()
        await runner.cleanup()
        log.info("stopped")
