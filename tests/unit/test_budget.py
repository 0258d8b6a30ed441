"""agent.budget.TokenBucket: the per-agent DNS query budget (DESIGN §5).

`rate` tokens per second, up to `burst` at once, waiters served in arrival order. Every test
drives an injected fake clock; `acquire` gets a fake sleep that advances it. Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from agent.probes import budget
from agent.probes.budget import TokenBucket


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.mark.parametrize(("rate", "burst"), [(10.0, 5), (20.0, 40), (0.5, 1), (1000.0, 3)])
def test_burst_passes_then_waits_are_spaced_one_over_rate(clock: FakeClock, rate: float, burst: int) -> None:
    bucket = TokenBucket(rate, burst, clock=clock)
    assert [bucket.reserve() for _ in range(burst)] == [0.0] * burst
    assert bucket.waits == 0
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([(i + 1) / rate for i in range(5)])
    assert bucket.waits == 5


def test_tokens_come_back_at_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(10.0, 4, clock=clock)
    for _ in range(4):
        bucket.reserve()
    clock.advance(0.1)  # one token back
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.waits == 1


def test_refill_is_capped_at_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(10.0, 3, clock=clock)
    clock.advance(3600)  # idle for an hour: still only `burst` at once
    assert [bucket.reserve() for _ in range(3)] == [0.0] * 3
    assert bucket.reserve() == pytest.approx(0.1)


def test_waiters_are_served_in_arrival_order_without_stampede(clock: FakeClock) -> None:
    bucket = TokenBucket(4.0, 2, clock=clock)
    for _ in range(2):
        bucket.reserve()
    # many callers arriving at the same instant each get their own later slot
    slots = [clock.now + bucket.reserve() for _ in range(6)]
    assert slots == sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps == pytest.approx([0.25] * 5)


def test_long_run_rate(clock: FakeClock) -> None:
    """In any window of T seconds at most burst + rate*T tokens go out; saturated, exactly `rate`."""
    rate, burst, n = 20.0, 40, 400
    bucket = TokenBucket(rate, burst, clock=clock)
    start = clock.now
    sent, waits = [], []
    for _ in range(n):  # callers that honour their wait, arriving every 10 ms (5x the rate)
        clock.advance(0.01)
        waits.append(bucket.reserve())
        sent.append(clock.now + waits[-1])
    assert sent == sorted(sent)
    for i in range(n):
        for j in range(i, n):
            assert j - i + 1 <= burst + rate * (sent[j] - sent[i]) + 1e-6
    # not stingier than promised: the burst, then one token per 1/rate
    assert sent[-1] - start == pytest.approx(0.01 + (n - burst) / rate)
    assert waits[:burst] == [0.0] * burst
    assert bucket.waits == sum(1 for w in waits if w > 0) > 0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (1.0, -5)])
def test_invalid_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, clock=FakeClock())


async def test_acquire_sleeps_exactly_the_reserved_wait(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(budget, "asyncio", SimpleNamespace(sleep=fake_sleep))
    bucket = TokenBucket(5.0, 2, clock=clock)
    for _ in range(5):
        await bucket.acquire()
    assert slept == pytest.approx([0.2, 0.4, 0.6])  # the first two were the burst: no sleep at all
    assert bucket.waits == 3


async def test_concurrent_acquires_go_out_spaced_in_arrival_order(monkeypatch: pytest.MonkeyPatch,
                                                                   clock: FakeClock) -> None:
    """Eight tasks at once through a bucket of 2 at 4/s: two now, then one every 250 ms, in order."""
    wakeups: list[tuple[float, int]] = []

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # yield like a real sleep, without waiting

    monkeypatch.setattr(budget, "asyncio", SimpleNamespace(sleep=fake_sleep))
    bucket = TokenBucket(4.0, 2, clock=clock)
    t0 = clock.now
    reserved: list[tuple[int, float]] = []

    async def caller(i: int) -> None:
        wait = bucket.reserve()
        reserved.append((i, wait))
        await budget.asyncio.sleep(wait)
        wakeups.append((clock.now + wait - t0, i))

    await asyncio.gather(*(caller(i) for i in range(8)))
    assert [i for i, _ in reserved] == list(range(8))
    assert [w for _, w in reserved] == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
    assert bucket.waits == 6
    assert [i for _, i in sorted(wakeups)] == list(range(8))  # each goes out in its own slot, in order
