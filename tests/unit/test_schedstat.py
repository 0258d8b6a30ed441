"""The event-loop thread's CPU wait (agent.scheduler.schedstat) and how a sweep reports it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.results import CPU_WAIT_MIN_SECONDS, CPU_WAIT_WARNING, SweepStats
from agent.scheduler import schedstat

LINUX_SCHEDSTAT = Path("/proc/thread-self/schedstat").exists()


def test_ratio_is_the_share_of_wanted_cpu_time_spent_waiting() -> None:
    s = SweepStats(cpu_seconds=0.3, cpu_wait_seconds=0.1)
    assert s.cpu_wait_ratio == pytest.approx(0.25)
    assert SweepStats(cpu_seconds=0.0, cpu_wait_seconds=0.0).cpu_wait_ratio == 0.0
    assert SweepStats(cpu_seconds=0.3).cpu_wait_ratio is None


def test_starved_needs_both_a_high_share_and_real_time() -> None:
    above = CPU_WAIT_WARNING * 1.5
    big = CPU_WAIT_MIN_SECONDS * 10
    assert SweepStats(cpu_seconds=big * (1 - above) / above, cpu_wait_seconds=big).cpu_starved
    tiny = CPU_WAIT_MIN_SECONDS / 2
    assert not SweepStats(cpu_seconds=tiny, cpu_wait_seconds=tiny).cpu_starved
    assert not SweepStats(cpu_seconds=100.0, cpu_wait_seconds=big).cpu_starved
    assert not SweepStats(cpu_seconds=1.0).cpu_starved


def test_sweep_json_carries_the_figures() -> None:
    doc = SweepStats(cpu_seconds=0.2, cpu_wait_seconds=0.1, loop_lag=0.01).to_json()
    assert doc["cpu_wait_ratio"] == pytest.approx(0.3333, abs=1e-4)
    assert doc["cpu_starved"] is True and doc["loop_lagging"] is False
    unknown = SweepStats().to_json()
    assert unknown["cpu_wait_seconds"] is None and unknown["cpu_wait_ratio"] is None
    assert unknown["cpu_starved"] is False


def test_meter_without_kernel_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(schedstat, "_PATH", str(tmp_path / "missing"))
    assert schedstat.read() is None
    with schedstat.CpuWaitMeter() as m:
        pass
    assert m.waiting is None and m.running == 0.0
    garbled = tmp_path / "schedstat"
    garbled.write_text("not numbers\n")
    monkeypatch.setattr(schedstat, "_PATH", str(garbled))
    assert schedstat.read() is None


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _measure_pinned(cpu: int, seconds: float) -> schedstat.CpuWaitMeter:
    """Busy-loops `seconds` in a thread pinned to `cpu`, under a meter; returns the meter."""
    out: list[schedstat.CpuWaitMeter] = []

    def run() -> None:
        os.sched_setaffinity(0, {cpu})  # 0: this thread only
        time.sleep(0.05)  # let the migration settle before measuring
        with schedstat.CpuWaitMeter() as m:
            _busy(seconds)
        out.append(m)

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=seconds + 30)
    assert out, "the measuring thread did not finish"
    return out[0]


@pytest.mark.skipif(not LINUX_SCHEDSTAT, reason="needs Linux per-thread schedstat")
def test_meter_sees_another_process_taking_the_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))
    alone = _measure_pinned(cpu, 0.3)
    assert alone.waiting is not None and alone.running > 0.1
    # A competing busy process on the same CPU (bounded: it exits by itself after 5 s).
    hog = subprocess.Popen(
        [sys.executable, "-c",
         f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nend = time.monotonic() + 5\n"
         "while time.monotonic() < end: pass\n"])
    try:
        time.sleep(0.2)
        shared = _measure_pinned(cpu, 0.6)
    finally:
        hog.kill()
        hog.wait()
    assert shared.waiting is not None
    # The scheduler splits the CPU between the two; the meter must see the thread's share of
    # waiting go up well beyond what it was alone, and past the starvation threshold.
    stats = SweepStats(cpu_seconds=shared.running, cpu_wait_seconds=shared.waiting)
    assert stats.cpu_wait_ratio is not None, (shared.running, shared.waiting)
    assert stats.cpu_wait_ratio > CPU_WAIT_WARNING, (shared.running, shared.waiting)
    assert shared.waiting > alone.waiting
