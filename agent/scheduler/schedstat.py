"""CPU wait of the event-loop thread, from Linux's per-thread scheduler statistics.

On a busy node the agent's thread can be runnable yet not running: a reply sits in its socket
while another process has the CPU, and the measured latency grows by that wait. The event-loop
lag probe misses most of it (a few ms at a time, under its threshold), so a sweep also records
how long the loop's thread waited for a CPU, relative to the CPU time it got.
`/proc/thread-self/schedstat` holds "<ns on a CPU> <ns waiting on a run queue> <timeslices>".
"""

from __future__ import annotations

import dataclasses

_PATH = "/proc/thread-self/schedstat"


@dataclasses.dataclass(frozen=True, slots=True)
class CpuTimes:
    running_ns: int
    waiting_ns: int


def read() -> CpuTimes | None:
    """This thread's totals so far; None where the kernel does not provide them."""
    try:
        with open(_PATH, "rb") as f:
            fields = f.read().split()
        return CpuTimes(int(fields[0]), int(fields[1]))
    except (OSError, ValueError, IndexError):
        return None


class CpuWaitMeter:
    """CPU time and run-queue wait of the calling thread between `__enter__` and `__exit__`."""

    def __init__(self) -> None:
        self._start: CpuTimes | None = None
        self.running = 0.0  # seconds on a CPU
        self.waiting: float | None = None  # seconds runnable but waiting; None if unknown

    def __enter__(self) -> CpuWaitMeter:
        self._start = read()
        return self

    def __exit__(self, *exc: object) -> None:
        end = read()
        if self._start is None or end is None:
            return
        self.running = max(0, end.running_ns - self._start.running_ns) / 1e9
        self.waiting = max(0, end.waiting_ns - self._start.waiting_ns) / 1e9
