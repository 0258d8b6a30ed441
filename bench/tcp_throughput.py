"""TCP connects per second on one core: svcprobe's probe vs a raw asyncio loop vs
blackbox_exporter's TCP prober, against loopback listeners.

    python -m bench.tcp_throughput [--quick] [--out FILE]      (normally run by bench/run)

Listeners: ``bench/listeners.py`` in a child pinned to CPU 0: 16 loopback addresses
(127.61.0.1-16) x 4 free ports = 64 listening sockets, accepting and closing. Targets are used
round-robin, so the connections (and their TIME_WAIT leftovers) spread over 64 destinations.

Engines, 64 connects in flight (the agent's default ``scheduler.concurrency``), each connect
bounded by a 1 s timeout, rounds interleaved like the DNS benchmark:

- ``raw``: the Python ceiling for an asyncio prober: 64 worker coroutines, each
  ``socket()`` / ``setblocking(False)`` / ``await loop.sock_connect()`` / ``close()``, nothing
  else (no timer, no timing, no classification).
- ``svcprobe``: ``agent.probes.tcp.connect(address, port, timeout=1.0)`` from the same 64
  workers: what a sweep's TCP check calls (timer, timing, result classification).
- ``blackbox``: prometheus-blackbox-exporter's ``tcp`` prober (GOMAXPROCS=1, pinned to CPU 1)
  driven over HTTP by ``bench.blackbox.drive`` (64 probes in flight on keep-alive connections;
  the driver moves to CPU 0 for these runs). Client CPU = the exporter's.

This process runs on CPU 1. Exit status 0 when every engine ran, 1 when one failed to run
(an exception, or more than 1% failed connects).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from typing import Any

from bench import blackbox
from bench.common import (
    DISTURBED_WAIT,
    REPO,
    CpuWatch,
    environment,
    log,
    ratio,
    runqueue_wait_seconds,
    summarise_rounds,
    write_json,
)
from bench.listeners import Listeners

ENGINES = ("raw", "svcprobe", "blackbox")
ADDRESSES = [f"127.61.0.{i}" for i in range(1, 17)]


class Counts:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.errors: list[str] = []

    def fail(self, why: str) -> None:
        self.failed += 1
        if len(self.errors) < 3:
            self.errors.append(why)


async def _workers(total: int, concurrency: int, deadline: float, one) -> Counts:
    counts = Counts()
    state = {"next": 0}

    async def worker() -> None:
        while True:
            i = state["next"]
            if i >= total or time.monotonic() >= deadline:
                return
            state["next"] = i + 1
            await one(i, counts)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic() + 15))
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)
        counts.errors.append(f"{len(pending)} workers cancelled")
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            counts.errors.append(repr(t.exception()))
    return counts


async def run_raw(targets: list[tuple[str, int]], total: int, concurrency: int, deadline: float) -> Counts:
    loop = asyncio.get_running_loop()
    n = len(targets)

    async def one(i: int, counts: Counts) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, targets[i % n])
            counts.ok += 1
        except OSError as exc:
            counts.fail(repr(exc))
        finally:
            sock.close()

    return await _workers(total, concurrency, deadline, one)


async def run_svcprobe(targets: list[tuple[str, int]], total: int, concurrency: int, deadline: float,
                       timeout: float) -> Counts:
    from agent.probes import tcp

    n = len(targets)

    async def one(i: int, counts: Counts) -> None:
        address, port = targets[i % n]
        result = await tcp.connect(address, port, timeout=timeout)
        if result.result == "ok":
            counts.ok += 1
        else:
            counts.fail(f"{result.result}: {result.detail}")

    return await _workers(total, concurrency, deadline, one)


class Context:
    def __init__(self, targets: list[tuple[str, int]], args: argparse.Namespace) -> None:
        self.targets, self.args = targets, args
        self.exporter: blackbox.Exporter | None = None
        self.requests: list[bytes] = []

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()


async def measure(name: str, ctx: Context, listener_pid: int) -> dict[str, Any]:
    args = ctx.args

    async def once(total: int, deadline: float) -> tuple[Counts, CpuWatch | None, float]:
        if name == "raw":
            return await run_raw(ctx.targets, total, args.concurrency, deadline), None, 0.0
        if name == "svcprobe":
            return await run_svcprobe(ctx.targets, total, args.concurrency, deadline, args.timeout), None, 0.0
        if ctx.exporter is None:
            ctx.exporter = blackbox.Exporter(blackbox.tcp_config(args.timeout), cpu=1 if args.pin else None).start()
            ctx.requests = [ctx.exporter.request("tcp", blackbox.target(a, p)) for a, p in ctx.targets]
        mine = os.sched_getaffinity(0)
        if args.pin:
            os.sched_setaffinity(0, {0})
        watch = CpuWatch(ctx.exporter.pid).start()
        t0 = time.perf_counter()
        try:
            res = await blackbox.drive(ctx.exporter.host, ctx.exporter.port, ctx.requests, total=total,
                                       concurrency=args.concurrency, deadline=deadline, timeout=args.timeout + 1)
        finally:
            watch.stop()
            os.sched_setaffinity(0, mine)
        counts = Counts()
        counts.ok, counts.failed, counts.errors = res.ok, res.failed, res.errors
        return counts, watch, time.perf_counter() - t0

    await once(min(2000, args.max_connects), time.monotonic() + args.warmup)
    lis = CpuWatch(listener_pid).start()
    wait0 = runqueue_wait_seconds(os.getpid())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    counts, ext, _ = await once(args.max_connects, time.monotonic() + args.duration)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    wait = runqueue_wait_seconds(os.getpid()) - wait0
    lis.stop()
    extra: dict[str, Any] = {}
    if ext is not None:
        extra["driver_cpu_seconds"] = round(cpu, 3)
        cpu, wait = ext.cpu, ext.wait
    done = counts.ok + counts.failed
    return {
        "ok": counts.ok, "failed": counts.failed, "detail": "; ".join(counts.errors),
        "seconds": round(elapsed, 4),
        "connects_per_second": round(counts.ok / elapsed, 1) if elapsed > 0 else 0.0,
        "client_cpu_seconds": round(cpu, 3),
        "connects_per_client_cpu_second": round(done / cpu, 1) if cpu > 0 else None,
        "client_cpu_utilisation": round(cpu / elapsed, 3) if elapsed > 0 else None,
        "client_runqueue_wait": round(wait / elapsed, 3) if elapsed > 0 else None,
        "server_cpu_utilisation": round(lis.cpu / elapsed, 3) if elapsed > 0 else None,
        **extra,
    }


def run_problem(res: dict[str, Any]) -> str | None:
    done = res["ok"] + res["failed"]
    if done == 0:
        return "no connect completed"
    if res["failed"] > 0.01 * done:
        return f"{res['failed']} of {done} connects failed"
    return None


def print_table(summary: dict[str, Any]) -> None:
    print("\nTCP connects/s (64 in flight, loopback listeners)")
    print(f"{'engine':<10} {'connects/s':>10} {'(min..max)':>17} {'per CPU-s':>10} {'client CPU':>10} "
          f"{'CPU wait':>9} {'listener CPU':>12} {'rounds':>7}")
    for name in ENGINES:
        s = summary["engines"].get(name)
        if not s or "pending" in s:
            if s:
                print(f"{name:<10} {'pending':>10}  {s['pending']}")
            continue
        rng = f"{s['connects_per_second_min']:.0f}..{s['connects_per_second_max']:.0f}"
        print(f"{name:<10} {s['connects_per_second_median']:>10.0f} {rng:>17} "
              f"{(s['connects_per_client_cpu_second_median'] or 0):>10.0f} "
              f"{(s['client_cpu_utilisation_median'] or 0):>10.0%} {(s['client_runqueue_wait_median'] or 0):>9.0%} "
              f"{(s['server_cpu_utilisation_median'] or 0):>12.0%} {len(s['rounds_used']):>3}/{s['rounds_total']:<3}")
    print(f"\n  {'ratio':<20} {'connects/s':>10} {'per CPU-s':>10}")
    for key, value in summary["ratios"].items():
        per = summary["ratios_per_client_cpu_second"][key]
        cells = [f"{v:.2f}" if v is not None else "n/a" for v in (value, per)]
        print(f"  {key:<20} {cells[0]:>10} {cells[1]:>10}")
    print()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.tcp_throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=float)
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--max-connects", type=int, default=200_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--no-pin", dest="pin", action="store_false")
    p.add_argument("--out", default=str(REPO / "bench" / "results-tcp.json"))
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.duration = args.duration or (1.0 if args.quick else 2.0)
    args.engines = [e for e in args.engines.split(",") if e]
    if set(args.engines) - set(ENGINES) or not 0 < args.duration <= 60:
        p.error(f"engines from {ENGINES}; --duration in (0, 60]")
    return args


async def main_async(args: argparse.Namespace) -> int:
    engines = list(args.engines)
    pending: dict[str, str] = {}
    if "blackbox" in engines and blackbox.find_exporter() is None:
        pending["blackbox"] = "prometheus-blackbox-exporter not installed (scripts/deps.d/25-bench.sh)"
        engines.remove("blackbox")
    problems = [f"{k}: {v}" for k, v in pending.items()]
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    with Listeners(ADDRESSES, 4, cpu=0 if args.pin else None, max_seconds=900) as lis:
        ctx = Context(lis.endpoints, args)
        log(f"tcp_throughput: {len(lis.endpoints)} listeners; {args.rounds} round(s) x {args.duration:g}s of "
            f"{', '.join(engines)}, {args.concurrency} in flight")
        try:
            for rnd in range(args.rounds):
                rotation = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
                for name in rotation:
                    try:
                        res = await measure(name, ctx, lis.pid)
                    except Exception as exc:
                        problems.append(f"{name} round {rnd + 1}: {type(exc).__name__}: {exc}")
                        log(f"  round {rnd + 1} {name:<9} FAILED: {exc!r}")
                        continue
                    res["round"] = rnd + 1
                    why = run_problem(res)
                    if why:
                        problems.append(f"{name} round {rnd + 1}: {why} {res['detail']}".strip())
                    runs[name].append(res)
                    log(f"  round {rnd + 1} {name:<9} {res['connects_per_second']:>8.0f} connects/s ({res['ok']} ok, "
                        f"{res['failed']} failed; client CPU {res['client_cpu_utilisation'] or 0:.0%}, "
                        f"waiting {res['client_runqueue_wait'] or 0:.0%}, "
                        f"listener CPU {res['server_cpu_utilisation'] or 0:.0%})"
                        + (" [disturbed]" if (res["client_runqueue_wait"] or 0) > DISTURBED_WAIT else "")
                        + (f" <- {why}" if why else ""))
        finally:
            ctx.close()
    runs = {k: v for k, v in runs.items() if v}
    eng: dict[str, Any] = {k: summarise_rounds(v, "connects_per_second", "connects_per_client_cpu_second")
                           for k, v in runs.items()}
    for k, why in pending.items():
        eng[k] = {"pending": why}
    pairs = (("svcprobe", "raw"), ("svcprobe", "blackbox"), ("raw", "blackbox"))

    def r(a: str, b: str, key: str) -> float | None:
        return ratio(eng.get(a, {}).get(key), eng.get(b, {}).get(key))

    summary = {
        "engines": eng,
        "ratios": {f"{a}/{b}": r(a, b, "connects_per_second_median") for a, b in pairs},
        "ratios_per_client_cpu_second": {f"{a}/{b}": r(a, b, "connects_per_client_cpu_second_median")
                                         for a, b in pairs},
    }
    result = {
        "benchmark": "tcp-connects-one-core",
        "parameters": {"engines": args.engines, "rounds": args.rounds, "duration_seconds": args.duration,
                       "concurrency": args.concurrency, "timeout_seconds": args.timeout,
                       "listeners": len(ADDRESSES) * 4, "quick": args.quick, "pinned": args.pin},
        "environment": environment(),
        "runs": runs,
        "summary": summary,
        "problems": problems,
    }
    print_table(summary)
    write_json(args.out, result)
    if problems:
        log("tcp_throughput problems:\n  " + "\n  ".join(problems))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
