"""Sweeps: every planned check once per interval, spread out, jittered and bounded.

The checks of a sweep get evenly spaced start slots over `spread × interval` (shuffled, so
one Service's checks do not go out together), each shifted by a random part of its slot.
At most `concurrency` checks run at once, and every DNS query also waits for the agent's
token bucket (inside the DNS engine). A sweep that takes longer than its interval is not
overlapped by the next; the overrun is reported as lag.

DNS checks go through `Prober.submit`: the engine drives the lookup from its socket
callbacks and the result is recorded from the completion callback, so a DNS check costs no
task or coroutine of its own. TCP checks run as one task per check (`Prober.run`).

Every result goes to the results store and to the `observe` callback (the runner passes the
metrics' histograms and counters); at the end of a sweep `failing_budget()` says how many
failing-Service series may be exported. Callbacks keep the scheduler below the outputs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.checks import CheckResult, DnsCheck, DnsResult, TcpCheck, TcpResult
from agent.planner import Plan
from agent.results import ResultStore, SweepStats
from agent.scheduler.protocol import Prober
from agent.scheduler.schedstat import CpuWaitMeter

log = logging.getLogger(__name__)
Check = DnsCheck | TcpCheck


def internal_error(check: Check, exc: BaseException | None) -> CheckResult:
    """The result of a check that failed inside the agent: reported as `error`, never lost."""
    what = f"{type(exc).__name__}: {str(exc)[:200]}" if exc is not None else "its result could not be made"
    result = DnsResult.ERROR if isinstance(check, DnsCheck) else TcpResult.ERROR
    return CheckResult(check, result, 0.0, time.time(), detail=f"internal error (see the agent's log): {what}")


class LoopLagMonitor:
    """Measures how late the event loop wakes a short sleeper: a busy loop skews timings."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, loop.time() - t0 - self.period)

    def __enter__(self) -> LoopLagMonitor:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="svcprobe-loop-lag")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class Scheduler:
    def __init__(
        self,
        prober: Prober,
        store: ResultStore,
        *,
        observe: Callable[[CheckResult], None] | None = None,
        failing_budget: Callable[[], int] | None = None,
        interval: float,
        spread: float,
        jitter: float,
        concurrency: int,
        rng: random.Random | None = None,
    ) -> None:
        self.prober, self.store = prober, store
        self.observe = observe
        self.failing_budget = failing_budget
        self.interval, self.spread, self.jitter = interval, spread, jitter
        self.concurrency = concurrency
        self.rng = rng or random.Random()

    async def sweep(self, plan: Plan, *, window: float | None = None,
                    on_result: Callable[[CheckResult], None] | None = None) -> SweepStats:
        """Run every check of `plan` once; `window` 0 runs them as fast as the limits allow."""
        checks: list[Check] = [*plan.dns, *plan.tcp]
        self.rng.shuffle(checks)
        window = self.interval * self.spread if window is None else window
        self.store.retain([*(c.key for c in checks), *plan.carried])
        stats = SweepStats(started_at=time.time(), checks=len(checks))
        t0 = time.perf_counter()
        with LoopLagMonitor() as lag, CpuWaitMeter() as cpu:
            await self._dispatch(checks, window, on_result)
        stats.duration = time.perf_counter() - t0
        stats.finished_at = time.time()
        stats.loop_lag = lag.worst
        stats.cpu_seconds, stats.cpu_wait_seconds = cpu.running, cpu.waiting
        stats.lag = max(0.0, stats.duration - self.interval) if window else 0.0
        budget = self.failing_budget() if self.failing_budget is not None else None
        self.store.finish_sweep(stats, failing_budget=budget)
        return stats

    def _record(self, result: CheckResult, on_result: Callable[[CheckResult], None] | None) -> None:
        self.store.put(result)
        if self.observe is not None:
            self.observe(result)
        if on_result is not None:
            on_result(result)

    async def _dispatch(self, checks: Sequence[Check], window: float,
                        on_result: Callable[[CheckResult], None] | None) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)
        slot = window / len(checks) if checks else 0.0
        start = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        submitted = _Submitted(self, slots, on_result)

        async def one(check: Check) -> None:
            try:
                result = await self.prober.run(check)
            except Exception as exc:  # a probe bug must not end the sweep, nor lose the check
                log.exception("check %s failed unexpectedly", check.key)
                result = internal_error(check, exc)
            try:
                self._record(result, on_result)
            finally:
                slots.release()

        try:
            for i, check in enumerate(checks):
                if slot:
                    due = start + slot * (i + self.rng.random() * self.jitter)
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await slots.acquire()
                if isinstance(check, DnsCheck):
                    submitted.start(check)
                    continue
                task = loop.create_task(one(check))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
            await submitted.wait()
        finally:
            for task in tasks:
                task.cancel()
            submitted.cancel()

    async def run_forever(self, plan_source: Callable[[], Plan],
                          after_sweep: Callable[[SweepStats], None] | None = None) -> None:
        """Sweep every interval until cancelled; a new plan is taken at each sweep start, and
        `after_sweep` is called with each completed sweep's stats."""
        loop = asyncio.get_running_loop()
        # Agents started together (a DaemonSet rollout) should not sweep in lockstep.
        await self._sleep(self.rng.random() * min(self.interval, 5.0) * self.jitter)
        while True:
            begun = loop.time()
            plan = plan_source()
            stats = await self.sweep(plan)
            log.info("sweep done: %d checks in %.2fs, %d failing", stats.checks, stats.duration, stats.failing)
            if after_sweep is not None:
                after_sweep(stats)
            await self._sleep(max(0.0, self.interval - (loop.time() - begun)))

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Submitted:
    """The DNS checks of one sweep started with `Prober.submit`: each holds a concurrency slot
    until its result is recorded from the completion callback."""

    def __init__(self, scheduler: Scheduler, slots: asyncio.Semaphore,
                 on_result: Callable[[CheckResult], None] | None) -> None:
        self.scheduler, self.slots, self.on_result = scheduler, slots, on_result
        self.running: set[_Run] = set()
        self._idle: asyncio.Future[None] | None = None

    def start(self, check: DnsCheck) -> None:
        run = _Run(self, check)
        try:
            run.handle = self.scheduler.prober.submit(check, run.done)
        except Exception as exc:  # a probe bug must not end the sweep, nor lose the check
            log.exception("check %s failed unexpectedly", check.key)
            try:
                self.scheduler._record(internal_error(check, exc), self.on_result)
            finally:
                self.slots.release()
            return
        self.running.add(run)

    def finished(self, run: _Run, result: CheckResult | None) -> None:
        self.running.discard(run)
        try:
            if result is None:  # the prober could not make one (logged there): still a result
                result = internal_error(run.check, None)
            self.scheduler._record(result, self.on_result)
        except Exception:
            log.exception("check %s failed unexpectedly", run.check.key)
        finally:
            self.slots.release()
        if not self.running and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def wait(self) -> None:
        if self.running:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def cancel(self) -> None:
        """The sweep was cancelled: abandon the lookups still running."""
        cancel = self.scheduler.prober.cancel
        for run in list(self.running):
            if run.handle is not None:
                cancel(run.handle)
        self.running.clear()


class _Run:
    __slots__ = ("submitted", "check", "handle")

    def __init__(self, submitted: _Submitted, check: DnsCheck) -> None:
        self.submitted, self.check = submitted, check
        self.handle: Any = None

    def done(self, result: CheckResult | None) -> None:
        self.submitted.finished(self, result)
