"""Sweeps: every planned check once per interval, spread out, jittered and bounded.

The checks of a sweep get evenly spaced start slots over `spread × interval` (shuffled, so
one Service's checks do not go out together), each shifted by a random part of its slot.
At most `concurrency` checks run at once, and every DNS query also waits for the agent's
token bucket (inside the DNS engine). A sweep that takes longer than its interval is not
overlapped by the next; the overrun is reported as lag.

DNS checks go through `Prober.submit` when the prober has it: the engine drives the lookup
from its socket callbacks and the result is recorded from the completion callback, so a
DNS check costs no task or coroutine of its own. TCP checks (and probers without `submit`)
run as one task per check.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.checks import CheckResult, DnsCheck, TcpCheck
from agent.metrics import Metrics
from agent.planner import Plan
from agent.prober import Prober
from agent.results import ResultStore, SweepStats
from agent.schedstat import CpuWaitMeter

log = logging.getLogger(__name__)
Check = DnsCheck | TcpCheck


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
        metrics: Metrics,
        *,
        interval: float,
        spread: float,
        jitter: float,
        concurrency: int,
        rng: random.Random | None = None,
    ) -> None:
        self.prober, self.store, self.metrics = prober, store, metrics
        self.interval, self.spread, self.jitter = interval, spread, jitter
        self.concurrency = concurrency
        self.rng = rng or random.Random()
        self.wakeup = asyncio.Event()  # set to start the next sweep early (e.g. new inventory)

    async def sweep(self, plan: Plan, *, window: float | None = None,
                    on_result: Callable[[CheckResult], None] | None = None) -> SweepStats:
        """Run every check of `plan` once; `window` 0 runs them as fast as the limits allow."""
        checks: list[Check] = [*plan.dns, *plan.tcp]
        self.rng.shuffle(checks)
        window = self.interval * self.spread if window is None else window
        self.store.retain(c.key for c in checks)
        stats = SweepStats(started_at=time.time(), checks=len(checks))
        t0 = time.perf_counter()
        with LoopLagMonitor() as lag, CpuWaitMeter() as cpu:
            await self._dispatch(checks, window, on_result)
        stats.duration = time.perf_counter() - t0
        stats.finished_at = time.time()
        stats.loop_lag = lag.worst
        stats.cpu_seconds, stats.cpu_wait_seconds = cpu.running, cpu.waiting
        stats.lag = max(0.0, stats.duration - self.interval) if window else 0.0
        self.metrics.update_failing_budget()
        self.store.finish_sweep(stats, failing_budget=self.metrics.failing_budget)
        return stats

    def _record(self, result: CheckResult, on_result: Callable[[CheckResult], None] | None) -> None:
        self.store.put(result)
        self.metrics.observe(result)
        if on_result is not None:
            on_result(result)

    async def _dispatch(self, checks: Sequence[Check], window: float,
                        on_result: Callable[[CheckResult], None] | None) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)
        slot = window / len(checks) if checks else 0.0
        start = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        submit = getattr(self.prober, "submit", None)
        submitted = _Submitted(self, slots, on_result)

        async def one(check: Check) -> None:
            try:
                self._record(await self.prober.run(check), on_result)
            except Exception:  # a probe bug must not end the sweep
                log.exception("check %s failed unexpectedly", check.key)
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
                if submit is not None and isinstance(check, DnsCheck):
                    submitted.start(submit, check)
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

    async def run_forever(self, plan_source: Callable[[], Plan]) -> None:
        """Sweep every interval until cancelled; a new plan is taken at each sweep start."""
        loop = asyncio.get_running_loop()
        # Agents started together (a DaemonSet rollout) should not sweep in lockstep.
        await self._sleep(self.rng.random() * min(self.interval, 5.0) * self.jitter)
        while True:
            begun = loop.time()
            plan = plan_source()
            stats = await self.sweep(plan)
            log.info("sweep done: %d checks in %.2fs, %d failing", stats.checks, stats.duration, stats.failing)
            await self._sleep(max(0.0, self.interval - (loop.time() - begun)))

    async def _sleep(self, seconds: float) -> None:
        self.wakeup.clear()
        try:
            await asyncio.wait_for(self.wakeup.wait(), timeout=seconds)
        except TimeoutError:
            pass


class _Submitted:
    """The DNS checks of one sweep started with `Prober.submit`: each holds a concurrency slot
    until its result is recorded from the completion callback."""

    def __init__(self, scheduler: Scheduler, slots: asyncio.Semaphore,
                 on_result: Callable[[CheckResult], None] | None) -> None:
        self.scheduler, self.slots, self.on_result = scheduler, slots, on_result
        self.running: set[_Run] = set()
        self._idle: asyncio.Future[None] | None = None

    def start(self, submit: Callable[..., Any], check: DnsCheck) -> None:
        run = _Run(self, check)
        try:
            run.handle = submit(check, run.done)
        except Exception:  # a probe bug must not end the sweep
            log.exception("check %s failed unexpectedly", check.key)
            self.slots.release()
            return
        self.running.add(run)

    def finished(self, run: _Run, result: CheckResult | None) -> None:
        self.running.discard(run)
        try:
            if result is not None:
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
        cancel = getattr(self.scheduler.prober, "cancel", None)
        for run in list(self.running):
            if cancel is not None and run.handle is not None:
                cancel(run.handle)
        self.running.clear()


class _Run:
    __slots__ = ("submitted", "check", "handle")

    def __init__(self, submitted: _Submitted, check: DnsCheck) -> None:
        self.submitted, self.check = submitted, check
        self.handle: Any = None

    def done(self, result: CheckResult | None) -> None:
        self.submitted.finished(self, result)
