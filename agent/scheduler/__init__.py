"""Sweeps: when each planned check runs (spread, jitter, concurrency), and how the event
loop and CPU behaved meanwhile (`LoopLagMonitor`, `schedstat`)."""

from agent.scheduler.protocol import Prober
from agent.scheduler.sweeps import Scheduler

__all__ = ["Prober", "Scheduler"]
