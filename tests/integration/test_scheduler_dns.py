"""Sweeps with the real prober and DNS engine on the wire (the in-process DNS server):
DNS checks go through `Prober.submit` (no task per check); spreading, the concurrency
bound, recording results and metrics, cancellation and probe bugs still hold."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.checks import CheckResult, DnsCheck, DnsExpectation, Expect, TcpCheck
from agent.demo.dnsserver import DnsServer, Fault, Records, add
from agent.health import Health
from agent.metrics import Metrics
from agent.planner import Plan, pod_search_list
from agent.probes.dns import DnsEngine, Lookup
from agent.probes.prober import Prober
from agent.results import ResultStore
from agent.scheduler import Scheduler

ZONE = "cluster.local"
N = 40


def records() -> Records:
    r: Records = {}
    for i in range(N):
        add(r, f"s{i}.shop.svc.{ZONE}.", "A", f"198.18.0.{i + 1}")
    return r


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    srv = DnsServer(records(), zone=ZONE)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.stop()


def dns_check(i: int, server: tuple[str, int], form: str = "short") -> DnsCheck:
    name = f"s{i}" if form == "short" else f"s{i}.shop.svc.{ZONE}."
    return DnsCheck("shop", f"s{i}", form, "A", "resolver", name, pod_search_list("shop", ZONE, ()), 5,
                    (server,), DnsExpectation(Expect.ANSWER, frozenset({f"198.18.0.{i + 1}"})))


class CountingProber(Prober):
    """The real prober, counting DNS checks in flight through submit()."""

    def __init__(self, engine: DnsEngine) -> None:
        super().__init__(engine, tcp_timeout=1.0)
        self.in_flight = 0
        self.max_in_flight = 0
        self.submitted: list[tuple[float, str]] = []

    def submit(self, check: DnsCheck, on_result: Callable[[CheckResult | None], None]) -> Lookup:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.submitted.append((time.monotonic(), check.service))

        def done(result: CheckResult | None) -> None:
            self.in_flight -= 1
            on_result(result)

        return super().submit(check, done)


@pytest.fixture
async def engine() -> AsyncIterator[DnsEngine]:
    eng = DnsEngine(timeout=0.5, attempts=1, sockets=2)
    yield eng
    await eng.close()


def make(prober: Prober, *, concurrency: int = 8, interval: float = 1.0) -> tuple[Scheduler, ResultStore, Metrics]:
    store = ResultStore()
    metrics = Metrics(store, Health(), series_budget=1000)
    sched = Scheduler(prober, store, observe=metrics.observe, failing_budget=metrics.update_failing_budget,
                      interval=interval, spread=0.8, jitter=0.1, concurrency=concurrency, rng=random.Random(7))
    return sched, store, metrics


async def test_dns_checks_are_submitted_recorded_and_bounded(server: DnsServer, engine: DnsEngine) -> None:
    server.default_fault = Fault("delay", seconds=0.01)  # keep lookups in flight long enough to overlap
    prober = CountingProber(engine)
    sched, store, metrics = make(prober, concurrency=5)
    seen: list[CheckResult] = []
    stats = await sched.sweep(Plan(tuple(dns_check(i, server.address) for i in range(N)), (), 0), window=0,
                              on_result=seen.append)
    assert stats.checks == N and len(store) == N and len(seen) == N
    assert len(prober.submitted) == N and prober.in_flight == 0
    assert prober.max_in_flight == 5  # the concurrency bound, reached and never passed
    assert all(r.result == "ok" and r.queries == 1 and r.duration_seconds >= 0.01 for r in store.snapshot())
    body, _ = metrics.render(None)
    lookups = [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples
               if s.name == "svcprobe_dns_lookups_total"]
    assert sum(s.value for s in lookups if s.labels["result"] == "ok") == N


async def test_submitted_checks_are_spread_over_the_window(server: DnsServer, engine: DnsEngine) -> None:
    prober = CountingProber(engine)
    sched, store, _ = make(prober, concurrency=100)
    t0 = time.monotonic()
    await sched.sweep(Plan(tuple(dns_check(i, server.address) for i in range(N)), (), 0), window=0.8)
    starts = sorted(t - t0 for t, _ in prober.submitted)
    assert starts[-1] >= 0.8 * (N - 1) / N - 0.01  # the last cannot start before its slot
    assert starts[0] < 0.1
    assert [s for _, s in prober.submitted] != [f"s{i}" for i in range(N)]  # shuffled
    assert len(store) == N


async def test_dns_and_tcp_checks_in_one_sweep(server: DnsServer, engine: DnsEngine) -> None:
    backend = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = backend.sockets[0].getsockname()[1]
    tcp_check = TcpCheck("shop", "s0", "cluster_ip", "127.0.0.1", port, "ipv4", "http")
    prober = CountingProber(engine)
    sched, store, _ = make(prober)
    try:
        await sched.sweep(Plan(tuple(dns_check(i, server.address) for i in range(5)), (tcp_check,), 0), window=0)
    finally:
        backend.close()
        await backend.wait_closed()
    results = {r.check.key: r.result for r in store.snapshot()}
    assert results[tcp_check.key] == "ok"
    assert sorted(v for k, v in results.items() if k[0] == "dns") == ["ok"] * 5
    assert len(prober.submitted) == 5  # DNS through submit, TCP as a task


async def test_failing_checks_are_judged_like_before(server: DnsServer, engine: DnsEngine) -> None:
    server.faults[f"s3.shop.svc.{ZONE}."] = Fault("servfail")
    wrong = dataclasses.replace(dns_check(4, server.address),
                                expect=DnsExpectation(Expect.ANSWER, frozenset({"198.18.9.9"})))
    sched, store, _ = make(Prober(engine, tcp_timeout=1.0))
    await sched.sweep(Plan((dns_check(2, server.address), dns_check(3, server.address), wrong), (), 0), window=0)
    by_service = {r.check.service: r for r in store.snapshot()}
    assert by_service["s2"].result == "ok"
    assert by_service["s3"].result == "servfail" and "SERVFAIL from" in by_service["s3"].detail
    assert by_service["s4"].result == "wrong_answer" and by_service["s4"].answer == ("198.18.0.5",)


async def test_cancelled_sweep_abandons_running_lookups(server: DnsServer, engine: DnsEngine) -> None:
    server.default_fault = Fault("drop")
    prober = CountingProber(engine)
    sched, store, _ = make(prober, concurrency=10)
    task = asyncio.create_task(sched.sweep(Plan(tuple(dns_check(i, server.address) for i in range(N)), (), 0),
                                           window=0))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(prober.submitted) == 10
    assert all(not c.pending for c in engine._conns)  # nothing left in flight
    await asyncio.sleep(0.6)  # past the timeout: no late result is recorded
    assert len(store) == 0


async def test_a_probe_bug_in_judging_does_not_hang_the_sweep(server: DnsServer, engine: DnsEngine,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    prober = Prober(engine, tcp_timeout=1.0)
    judge = prober.judge

    def buggy(check: DnsCheck, lookup: Lookup) -> CheckResult:
        if check.service == "s1":
            raise RuntimeError("probe bug")
        return judge(check, lookup)

    monkeypatch.setattr(prober, "judge", buggy)
    sched, store, _ = make(prober, concurrency=1)
    stats = await sched.sweep(Plan(tuple(dns_check(i, server.address) for i in range(3)), (), 0), window=0)
    assert stats.checks == 3
    results = {r.check.service: r for r in store.snapshot()}
    assert set(results) == {"s0", "s1", "s2"}  # none lost: the one that could not be judged is an error
    assert results["s1"].result == "error" and "internal error" in results["s1"].detail
    assert results["s0"].result == results["s2"].result == "ok"
