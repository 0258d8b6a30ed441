"""Sweeps: spreading, the concurrency bound, the series budget, stale results dropped.

A recording prober stands in for the engines (the engines have their own tests), through
the same `Prober` interface the agent's prober offers (DNS checks via `submit`); the
scheduler, store and metrics collector are the real ones.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.checks import CheckResult, DnsCheck, DnsExpectation, Expect, TcpCheck
from agent.health import Health
from agent.metrics import Metrics
from agent.planner import Plan
from agent.results import ResultStore
from agent.scheduler import Scheduler


def dns_check(service: str, form: str = "fqdn") -> DnsCheck:
    return DnsCheck("ns", service, form, "A", "resolver", f"{service}.ns.svc.cluster.local.", (), 5,
                    (("127.0.0.1", 53),), DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.1"})))


class RecordingProber:
    def __init__(self, *, delay: float = 0.0, failing: set[str] | None = None) -> None:
        self.delay = delay
        self.failing = failing or set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[tuple[float, str]] = []

    async def run(self, check: DnsCheck | TcpCheck, *, trace: bool = False) -> CheckResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.append((time.monotonic(), check.service))
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        result = "wrong_answer" if check.service in self.failing else "ok"
        return CheckResult(check, result, 0.001, time.time(), queries=1, server="127.0.0.1")

    def submit(self, check: DnsCheck, on_result: Callable[[CheckResult | None], None]) -> asyncio.Task[None]:
        async def lookup() -> None:
            try:
                result: CheckResult | None = await self.run(check)
            except Exception:  # as the agent's prober does: no result, but always a call
                result = None
            on_result(result)

        return asyncio.get_running_loop().create_task(lookup())

    def cancel(self, handle: asyncio.Task[None]) -> None:
        handle.cancel()


def make(prober: RecordingProber, *, budget: int = 1000, concurrency: int = 8, interval: float = 1.0,
         spread: float = 0.8) -> tuple[Scheduler, ResultStore, Metrics]:
    store = ResultStore()
    metrics = Metrics(store, Health(), series_budget=budget)
    sched = Scheduler(prober, store, observe=metrics.observe, failing_budget=metrics.update_failing_budget,
                      interval=interval, spread=spread, jitter=0.1, concurrency=concurrency, rng=random.Random(7))
    return sched, store, metrics


def plan(services: list[str]) -> Plan:
    return Plan(tuple(dns_check(s) for s in services), (), 0)


async def test_concurrency_is_bounded() -> None:
    prober = RecordingProber(delay=0.02)
    sched, store, _ = make(prober, concurrency=5)
    stats = await sched.sweep(plan([f"s{i}" for i in range(60)]), window=0)
    assert prober.max_in_flight == 5
    assert stats.checks == 60 and len(store) == 60


async def test_checks_are_spread_over_the_window() -> None:
    prober = RecordingProber()
    sched, _, _ = make(prober, concurrency=100)
    t0 = time.monotonic()
    await sched.sweep(plan([f"s{i}" for i in range(40)]), window=0.8)
    starts = sorted(t - t0 for t, _ in prober.started)
    # Not all at once: the last check cannot start before its slot (39/40 of the window).
    assert starts[-1] >= 0.8 * 39 / 40 - 0.01
    assert starts[0] < 0.1
    # The order is shuffled, not the plan order.
    assert [s for _, s in prober.started] != [f"s{i}" for i in range(40)]


async def test_results_of_unplanned_checks_are_dropped() -> None:
    prober = RecordingProber(failing={"b"})
    sched, store, _ = make(prober)
    await sched.sweep(plan(["a", "b"]), window=0)
    assert store.failing_series() == [("ns", "b", "dns", "resolver", "wrong_answer")]
    await sched.sweep(plan(["a"]), window=0)
    assert store.failing_series() == []
    assert {r.check.service for r in store.snapshot()} == {"a"}


def scrape(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    body, _ = metrics.render(None)
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_series_budget_caps_failing_series_and_counts_the_rest() -> None:
    failing = {f"s{i:03d}" for i in range(300)}
    prober = RecordingProber(failing=failing)
    sched, _, metrics = make(prober, budget=150, concurrency=50)
    await sched.sweep(plan(sorted(failing)), window=0)
    m = scrape(metrics)
    total = sum(len(v) for k, v in m.items())
    exported = len(m.get("svcprobe_service_failing", []))
    assert 0 < exported < 300
    assert total <= 150 + 5  # the budget, give or take the failing family's own bookkeeping
    dropped = m["svcprobe_series_dropped_total"][0][1]
    assert dropped == 300 - exported
    # Deterministic choice: the first series in sorted order are the ones kept.
    kept = sorted(l["service"] for l, _ in m["svcprobe_service_failing"])
    assert kept == sorted(failing)[:exported]


@pytest.mark.parametrize("budget", [1000, 5000])
async def test_large_budget_exports_everything(budget: int) -> None:
    prober = RecordingProber(failing={"x", "y"})
    sched, _, metrics = make(prober, budget=budget)
    await sched.sweep(plan(["x", "y", "z"]), window=0)
    m = scrape(metrics)
    assert len(m["svcprobe_service_failing"]) == 2
    assert m["svcprobe_series_dropped_total"][0][1] == 0


async def test_a_crashing_probe_does_not_end_the_sweep() -> None:
    class Flaky(RecordingProber):
        async def run(self, check: DnsCheck | TcpCheck, *, trace: bool = False) -> CheckResult:
            if check.service == "boom":
                raise RuntimeError("probe bug")
            return await super().run(check)

    sched, store, _ = make(Flaky())
    tcp = TcpCheck("ns", "boom", "endpoint", "127.0.0.1", 9, "ipv4", "http")
    stats = await sched.sweep(Plan(plan(["a", "boom", "c"]).dns, (tcp,), 0), window=0)
    assert stats.checks == 4
    # No check disappears: the ones whose probe crashed are reported as errors.
    by_kind = {(r.check.service, r.check.kind): r for r in store.snapshot()}
    assert set(by_kind) == {("a", "dns"), ("boom", "dns"), ("c", "dns"), ("boom", "tcp")}
    assert by_kind[("boom", "dns")].result == "error" and not by_kind[("boom", "dns")].passing
    assert by_kind[("boom", "tcp")].result == "error"
    assert "internal error" in by_kind[("boom", "tcp")].detail and "probe bug" in by_kind[("boom", "tcp")].detail


async def test_overrunning_sweep_reports_lag() -> None:
    prober = RecordingProber(delay=0.3)
    sched, _, _ = make(prober, concurrency=1, interval=0.2, spread=1.0)
    stats = await sched.sweep(plan(["a", "b"]))
    assert stats.lag > 0
    assert stats.duration >= 0.6
