"""A token bucket for the agent's own DNS load (the per-agent query budget)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, up to `burst` at once; waiters are served in arrival order.

    Implemented as a virtual schedule (GCRA): each acquire reserves the next free slot, so
    many concurrent waiters neither spin nor stampede when tokens come back.
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = rate, burst
        self._interval = 1.0 / rate
        self._clock = clock
        self._tat = clock()  # theoretical arrival time of the next token
        self.waits = 0  # acquires that found the bucket empty

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        now = self._clock()
        tat = max(self._tat, now)
        wait = tat - now - (self.burst - 1) * self._interval
        self._tat = tat + self._interval
        if wait > 1e-9:  # below that it is float residue of the schedule, not an empty bucket
            self.waits += 1
            return wait
        return 0.0

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
