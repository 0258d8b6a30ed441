"""Helpers shared by the benchmark sections (bench/*.py): process CPU and scheduling figures,
pinning, percentiles, medians over rounds, loopback checks and free ports.

Nothing here sends traffic. Every address a benchmark uses is checked to be loopback
(127.0.0.0/8 or ::1) by :func:`loopback`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A run whose measured process waited this share of its time for a CPU held by another process
# is "disturbed" and left out of the medians when undisturbed rounds exist (as in dns_bench).
DISTURBED_WAIT = 0.10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loopback(address: str) -> str:
    """The address, if it is loopback; ValueError otherwise (benchmarks talk only to loopback)."""
    ip = ipaddress.ip_address(address)
    if not ip.is_loopback:
        raise ValueError(f"benchmarks send traffic to loopback addresses only, not {address}")
    return str(ip)


def free_port(address: str, kind: int = socket.SOCK_STREAM) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((loopback(address), 0))
        return s.getsockname()[1]


def two_cpus() -> bool:
    """Whether the machine has (at least) CPUs 0 and 1 and taskset to pin to them."""
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def taskset(cpu: int | None) -> list[str]:
    """Command prefix that pins a child to `cpu` (empty when not pinning)."""
    if cpu is None or cpu < 0 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU, from
    /proc/PID/task/*/schedstat; 0.0 where the kernel does not provide it."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return 0.0
    return total / 1e9


def peak_rss_mib() -> float:
    """Peak RSS of this process: VmHWM (per address space), never less than ru_maxrss."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return max(peak, int(line.split()[1]) / 1024)
    except OSError:
        pass
    return peak


def rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class CpuWatch:
    """CPU seconds and run-queue wait of another process between start() and stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0 = self.wait0 = 0.0
        self.cpu = self.wait = 0.0

    def start(self) -> CpuWatch:
        self.cpu0 = proc_cpu_seconds(self.pid)
        self.wait0 = runqueue_wait_seconds(self.pid)
        return self

    def stop(self) -> CpuWatch:
        self.cpu = proc_cpu_seconds(self.pid) - self.cpu0
        self.wait = runqueue_wait_seconds(self.pid) - self.wait0
        return self


def disturbed(run: dict[str, Any]) -> bool:
    return (run.get("client_runqueue_wait") or 0) > DISTURBED_WAIT


def summarise_rounds(runs: list[dict[str, Any]], rate_key: str, cpu_rate_key: str) -> dict[str, Any]:
    """Medians over the undisturbed rounds (all rounds when none is undisturbed)."""
    clean = [r for r in runs if not disturbed(r)]
    rs = clean or runs
    rates = [r[rate_key] for r in rs]
    cpu_rates = [r[cpu_rate_key] for r in rs if r.get(cpu_rate_key)]

    def med(key: str) -> float | None:
        xs = [r[key] for r in rs if r.get(key) is not None]
        return statistics.median(xs) if xs else None

    return {
        "rounds_used": [r["round"] for r in rs],
        "rounds_total": len(runs),
        "rounds_disturbed": sum(1 for r in runs if r not in clean),
        f"{rate_key}_median": statistics.median(rates),
        f"{rate_key}_min": min(rates),
        f"{rate_key}_max": max(rates),
        f"{cpu_rate_key}_median": statistics.median(cpu_rates) if cpu_rates else None,
        "client_cpu_utilisation_median": med("client_cpu_utilisation"),
        "client_runqueue_wait_median": med("client_runqueue_wait"),
        "server_cpu_utilisation_median": med("server_cpu_utilisation"),
    }


def ratio(x: float | None, y: float | None) -> float | None:
    return round(x / y, 3) if x and y else None


def git_commit() -> str:
    """The measured code's commit, marked when agent/ or bench/ has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "agent", "bench"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return commit + "+uncommitted" if dirty else commit


def environment() -> dict[str, Any]:
    import platform

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = git_commit()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        "python": platform.python_version(),
        "cpu_model": cpu_model,
        "cpus_online": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }


def write_json(path: str | Path, data: Any) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")


def sweep_flags(sweep: dict[str, Any]) -> str:
    """Why a sweep's timings were flagged ("loop lag", "cpu wait", both), or "" if they were not."""
    return ", ".join(why for why, on in (("loop lag", sweep.get("loop_lagging")),
                                         ("cpu wait", sweep.get("cpu_starved"))) if on)
