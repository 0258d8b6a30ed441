"""DNS lookups per second: svcprobe's engine next to blackbox_exporter's DNS prober and dnsperf,
against one private knotd, with the raw asyncio loop as the common reference.

    python -m bench.dns_external [--quick] [--out FILE]      (normally run by bench/run)

The same zone, query set (every Service's FQDN, type A, one fixed shuffled order, cycled),
knotd configuration (1 UDP worker) and pinning as ``bench/dns_bench.py``, whose ``raw`` and
``svcprobe`` engines are reused as they are (``dns_bench.run_engine``), so its columns and these
can be read side by side; the ratios to blackbox_exporter and dnsperf are taken *within this
section* (same knotd, interleaved rounds). Engines:

- ``raw``, ``svcprobe``: as in dns_bench (this process, pinned to CPU 1, 100 lookups in flight).
- ``blackbox``: prometheus-blackbox-exporter (GOMAXPROCS=1, pinned to CPU 1, the client core),
  one DNS module per name (the DNS prober takes its name from the module) that checks the answer
  against the zone, driven over HTTP by ``bench.blackbox.drive`` with 100 probes in flight on
  keep-alive connections. During these runs the driver (the stand-in for Prometheus) moves to
  CPU 0, next to knotd, so the exporter has the client core to itself. Client CPU = the
  exporter's.
- ``dnsperf``: ``dnsperf -c 4 -q 100 -T 1`` (4 sockets and 100 queries in flight, like raw),
  pinned to CPU 1, reading the same names; it counts NOERROR replies without checking them.
  Its lookups/s, with knotd's CPU next to it, is what this server delivers to a client that
  costs next to nothing: the server's limit.

Exit status 0 when every engine ran, 1 when one failed to run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import blackbox, dns_bench
from bench.common import (
    DISTURBED_WAIT,
    REPO,
    CpuWatch,
    environment,
    log,
    proc_cpu_seconds,
    ratio,
    runqueue_wait_seconds,
    summarise_rounds,
    write_json,
)
from bench.dns_engines import Counts, Job
from tests.support.knot import KnotServer

ENGINES = ("raw", "svcprobe", "blackbox", "dnsperf")


class External:
    """Counts of an engine that ran in another process, with that process's figures."""

    def __init__(self, counts: Counts, cpu: float, wait: float, seconds: float | None, **extra: Any) -> None:
        self.counts, self.cpu, self.wait, self.seconds, self.extra = counts, cpu, wait, seconds, extra


class Context:
    def __init__(self, server: KnotServer, names: list[str], addrs: list[str], args: argparse.Namespace) -> None:
        self.server, self.names, self.addrs, self.args = server, names, addrs, args
        self.exporter: blackbox.Exporter | None = None
        self.requests: list[bytes] = []
        self.query_file = ""
        self.driver_cpu: int | None = 0 if args.pin else None
        self.client_cpu: int | None = 1 if args.pin else None

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
        if self.query_file:
            try:
                os.unlink(self.query_file)
            except OSError:
                pass


async def run_blackbox(ctx: Context, job: Job) -> External:
    if ctx.exporter is None:
        cfg = blackbox.dns_config(ctx.names, ctx.addrs, job.timeout)
        ctx.exporter = blackbox.Exporter(cfg, cpu=ctx.client_cpu, gomaxprocs=1).start()
        where = blackbox.target(*ctx.server.nameserver)
        index = {name: i for i, name in enumerate(ctx.names)}
        ctx.requests = [ctx.exporter.request(blackbox.dns_module_name(index[n]), where) for n in job.names]
    ex = ctx.exporter
    mine = os.sched_getaffinity(0)
    if ctx.driver_cpu is not None:
        os.sched_setaffinity(0, {ctx.driver_cpu})
    watch = CpuWatch(ex.pid).start()
    try:
        t0 = time.perf_counter()
        res = await blackbox.drive(ex.host, ex.port, ctx.requests, total=job.total, concurrency=job.concurrency,
                                   deadline=job.deadline, timeout=job.timeout + 1)
        elapsed = time.perf_counter() - t0
    finally:
        watch.stop()
        os.sched_setaffinity(0, mine)
    counts = Counts(ok=res.ok, failed=res.failed, detail="; ".join(res.errors))
    return External(counts, watch.cpu, watch.wait, elapsed)


_DNSPERF_NUM = re.compile(
    r"^\s*(Queries sent|Queries completed|Queries lost|Run time \(s\)|Queries per second):\s+([0-9.]+)", re.M)


def parse_dnsperf(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(v) for k, v in _DNSPERF_NUM.findall(text)}
    m = re.search(r"Response codes:\s+(.*)", text)
    codes: dict[str, int] = {}
    if m:
        for code, n in re.findall(r"([A-Z]+) (\d+)", m.group(1)):
            codes[code] = int(n)
    out["codes"] = codes
    m = re.search(r"Average Latency \(s\):\s+([0-9.]+) \(min ([0-9.]+), max ([0-9.]+)\)", text)
    if m:
        out["latency_avg"], out["latency_min"], out["latency_max"] = map(float, m.groups())
    return out


async def run_dnsperf(ctx: Context, job: Job) -> External:
    if not ctx.query_file:
        fd, ctx.query_file = tempfile.mkstemp(prefix="svcprobe-bench-dnsperf-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{n} A\n" for n in job.names))
    seconds = max(0.1, job.deadline - time.monotonic())
    runs = max(1, math.ceil(job.total / len(job.names)))
    host, port = ctx.server.nameserver
    cmd = [*(["taskset", "-c", str(ctx.client_cpu)] if ctx.client_cpu is not None else []),
           "dnsperf", "-s", host, "-p", str(port), "-d", ctx.query_file, "-l", f"{seconds:.3f}",
           "-n", str(runs), "-c", "4", "-q", str(job.concurrency), "-T", "1", "-t", f"{job.timeout:g}"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    cpu = wait = 0.0
    reader = asyncio.ensure_future(proc.communicate())
    # Its CPU and run-queue wait, sampled until it exits (/proc vanishes with it).
    while not reader.done():
        try:
            cpu, wait = proc_cpu_seconds(proc.pid), runqueue_wait_seconds(proc.pid)
        except OSError:
            pass
        await asyncio.wait([reader], timeout=0.05)
        if time.monotonic() > job.deadline + 30:
            proc.kill()
    out, err = await reader
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"dnsperf exited {proc.returncode}: {err.decode(errors='replace')[-300:]}")
    stats = parse_dnsperf(text)
    ok = stats["codes"].get("NOERROR", 0)
    wrong = sum(n for c, n in stats["codes"].items() if c != "NOERROR")
    lost = int(stats.get("Queries lost", 0))
    return External(Counts(ok=ok, wrong=wrong, failed=lost), cpu, wait, stats.get("Run time (s)"),
                    dnsperf_qps=stats.get("Queries per second"), dnsperf_latency_avg=stats.get("latency_avg"))


async def measure(name: str, ctx: Context) -> dict[str, Any]:
    args = ctx.args
    engine_args = argparse.Namespace(raw_sockets=4)

    async def once(job: Job) -> Counts | External:
        if name == "blackbox":
            return await run_blackbox(ctx, job)
        if name == "dnsperf":
            return await run_dnsperf(ctx, job)
        return await dns_bench.run_engine(name, job, engine_args)

    warm = Job(ctx.server.nameserver, ctx.names, ctx.addrs, total=min(2000, args.max_lookups),
               concurrency=args.concurrency, deadline=time.monotonic() + args.warmup)
    await once(warm)
    job = Job(ctx.server.nameserver, ctx.names, ctx.addrs, total=args.max_lookups, concurrency=args.concurrency,
              deadline=time.monotonic() + args.duration)
    knot = CpuWatch(ctx.server.pid).start()
    wait0 = runqueue_wait_seconds(os.getpid())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    got = await once(job)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    wait = runqueue_wait_seconds(os.getpid()) - wait0
    knot.stop()
    extra: dict[str, Any] = {}
    if isinstance(got, External):
        counts = got.counts
        extra = {"driver_cpu_seconds": round(cpu, 3), **got.extra}
        cpu, wait, elapsed = got.cpu, got.wait, got.seconds or elapsed
    else:
        counts = got
    return {
        "ok": counts.ok, "wrong": counts.wrong, "failed": counts.failed, "detail": counts.detail,
        "seconds": round(elapsed, 4),
        "lookups_per_second": round(counts.ok / elapsed, 1) if elapsed > 0 else 0.0,
        "client_cpu_seconds": round(cpu, 3),
        "lookups_per_client_cpu_second": round(counts.done / cpu, 1) if cpu > 0 else None,
        "client_cpu_utilisation": round(cpu / elapsed, 3) if elapsed > 0 else None,
        "client_runqueue_wait": round(wait / elapsed, 3) if elapsed > 0 else None,
        "server_cpu_utilisation": round(knot.cpu / elapsed, 3) if elapsed > 0 else None,
        **extra,
    }


def print_table(summary: dict[str, Any], engines: list[str]) -> None:
    print("\nDNS lookups/s, svcprobe vs blackbox_exporter and dnsperf (same knotd, interleaved rounds)")
    print(f"{'engine':<10} {'lookups/s':>10} {'(min..max)':>19} {'per CPU-s':>10} {'client CPU':>10} "
          f"{'CPU wait':>9} {'knotd CPU':>10} {'rounds':>7}")
    for name in engines:
        s = summary["engines"].get(name)
        if not s:
            continue
        rng = f"{s['lookups_per_second_min']:.0f}..{s['lookups_per_second_max']:.0f}"
        print(f"{name:<10} {s['lookups_per_second_median']:>10.0f} {rng:>19} "
              f"{(s['lookups_per_client_cpu_second_median'] or 0):>10.0f} "
              f"{(s['client_cpu_utilisation_median'] or 0):>10.0%} {(s['client_runqueue_wait_median'] or 0):>9.0%} "
              f"{(s['server_cpu_utilisation_median'] or 0):>10.0%} "
              f"{len(s['rounds_used']):>3}/{s['rounds_total']:<3}")
    print(f"\n  {'ratio':<20} {'lookups/s':>10} {'per CPU-s':>10}")
    for key, value in summary["ratios"].items():
        per = summary["ratios_per_client_cpu_second"][key]
        cells = [f"{v:.2f}" if v is not None else "n/a" for v in (value, per)]
        print(f"  {key:<20} {cells[0]:>10} {cells[1]:>10}")
    print()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dns_external", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--services", type=int, default=2000)
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=float)
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--max-lookups", type=int, default=1_000_000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin (fewer than 2 CPUs)")
    p.add_argument("--out", default=str(REPO / "bench" / "results-dns-external.json"))
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.duration is None:
        args.duration = 1.0 if args.quick else 2.0
    args.engines = [e for e in args.engines.split(",") if e]
    if set(args.engines) - set(ENGINES):
        p.error(f"engines: {ENGINES}")
    if not 0 < args.duration <= 120 or args.rounds < 1:
        p.error("--duration in (0, 120], --rounds >= 1")
    return args


async def main_async(args: argparse.Namespace) -> int:
    zone, names, addrs = dns_bench.service_zone(args.services)
    order = list(range(len(names)))
    random.Random(2024).shuffle(order)  # the same order as dns_bench
    names = [names[i] for i in order]
    addrs = [addrs[i] for i in order]
    engines = list(args.engines)
    pending: dict[str, str] = {}
    if "svcprobe" in engines:
        why = dns_bench.svcprobe_adapter.availability()
        if why:
            pending["svcprobe"] = why
            engines.remove("svcprobe")
    if "blackbox" in engines and blackbox.find_exporter() is None:
        pending["blackbox"] = "prometheus-blackbox-exporter not installed (scripts/deps.d/25-bench.sh)"
        engines.remove("blackbox")
    if "dnsperf" in engines and not any(os.access(f"{d}/dnsperf", os.X_OK) for d in ("/usr/bin", "/usr/local/bin")):
        pending["dnsperf"] = "dnsperf not installed (scripts/deps.d/25-bench.sh)"
        engines.remove("dnsperf")
    problems = [f"{k}: {v}" for k, v in pending.items()]
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    server_cpu = 0 if args.pin else None
    with KnotServer({dns_bench.ZONE: zone}, cpu=server_cpu, log_level="warning") as server:
        ctx = Context(server, names, addrs, args)
        log(f"dns_external: knotd at {server.address}@{server.port}; {len(names)} names; "
            f"{args.rounds} round(s) x {args.duration:g}s of {', '.join(engines)}")
        try:
            for rnd in range(args.rounds):
                rotation = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
                for name in rotation:
                    try:
                        res = await measure(name, ctx)
                    except Exception as exc:
                        problems.append(f"{name} round {rnd + 1}: {type(exc).__name__}: {exc}")
                        log(f"  round {rnd + 1} {name:<9} FAILED: {exc!r}")
                        continue
                    res["round"] = rnd + 1
                    why = dns_bench.run_problem(res)
                    if why:
                        problems.append(f"{name} round {rnd + 1}: {why} {res['detail']}".strip())
                    runs[name].append(res)
                    log(f"  round {rnd + 1} {name:<9} {res['lookups_per_second']:>9.0f} lookups/s ({res['ok']} ok, "
                        f"{res['wrong']} wrong, {res['failed']} failed; client CPU "
                        f"{res['client_cpu_utilisation'] or 0:.0%}, waiting {res['client_runqueue_wait'] or 0:.0%}, "
                        f"knotd CPU {res['server_cpu_utilisation'] or 0:.0%})"
                        + (" [disturbed]" if (res["client_runqueue_wait"] or 0) > DISTURBED_WAIT else "")
                        + (f" <- {why}" if why else ""))
        finally:
            ctx.close()
    runs = {k: v for k, v in runs.items() if v}
    eng = {k: summarise_rounds(v, "lookups_per_second", "lookups_per_client_cpu_second") for k, v in runs.items()}
    for k, why in pending.items():
        eng[k] = {"pending": why}
    pairs = (("svcprobe", "raw"), ("svcprobe", "blackbox"), ("svcprobe", "dnsperf"), ("raw", "blackbox"),
             ("raw", "dnsperf"), ("blackbox", "dnsperf"))

    def r(a: str, b: str, key: str) -> float | None:
        return ratio(eng.get(a, {}).get(key), eng.get(b, {}).get(key))

    summary = {
        "engines": eng,
        "ratios": {f"{a}/{b}": r(a, b, "lookups_per_second_median") for a, b in pairs},
        "ratios_per_client_cpu_second": {f"{a}/{b}": r(a, b, "lookups_per_client_cpu_second_median")
                                         for a, b in pairs},
    }
    result = {
        "benchmark": "dns-lookups-vs-blackbox-dnsperf",
        "parameters": {"engines": args.engines, "services": args.services, "rounds": args.rounds,
                       "duration_seconds": args.duration, "concurrency": args.concurrency, "quick": args.quick,
                       "pinned": args.pin},
        "environment": {**environment(), "blackbox_exporter": blackbox.exporter_version(blackbox.find_exporter())
                        if blackbox.find_exporter() else None,
                        "dnsperf": _dnsperf_version()},
        "runs": runs,
        "summary": summary,
        "problems": problems,
    }
    print_table(summary, ENGINES)
    write_json(args.out, result)
    if problems:
        log("dns_external problems:\n  " + "\n  ".join(problems))
        return 1
    return 0


def _dnsperf_version() -> str | None:
    try:
        out = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Version ([0-9.]+)", out.stdout + out.stderr)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
