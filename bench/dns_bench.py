"""DNS lookup throughput on one core: raw asyncio UDP ceiling vs dnspython vs svcprobe's engine.

Run it through ``bench/run`` (which installs knot and pins the processes); see bench/README.md.
Starts a private knotd on a loopback address serving a zone of N Services, then, in rounds,
runs every engine on the same shuffled query set (every Service's FQDN, type A) for a fixed
time (and at most a fixed count), and reports lookups per second, ratios and CPU figures.
All traffic goes to the loopback knotd. Exit status: 0 when every benchmark ran, 1 when one
failed to run (an exception, or answers that were wrong or missing), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dns.version

from bench import svcprobe_adapter
from bench.common import git_commit, proc_cpu_seconds, runqueue_wait_seconds
from bench.dns_engines import Counts, Job, run_dnspython, run_raw, run_raw_await, run_raw_drain
from tests.support.knot import KnotServer, Record, find_knot, zone_text

REPO = Path(__file__).resolve().parents[1]
ZONE = "cluster.local."
ENGINES = ("raw", "raw_drain", "raw_await", "dnspython", "svcprobe")
# A run whose client waited this share of its time for a CPU held by another process is
# "disturbed" and left out of the medians when undisturbed rounds exist.
DISTURBED_WAIT = 0.10


# --------------------------------------------------------------------------------------------
# the zone and the query set


def service_zone(services: int, namespaces: int = 20) -> tuple[str, list[str], list[str]]:
    """Zone text with ``services`` ClusterIP Services (one A each), their FQDNs, their IPs."""
    names, addrs, records = [], [], []
    for i in range(services):
        owner = f"svc-{i:05d}.ns-{i % namespaces:02d}.svc"
        addr = f"198.18.{10 + i // 200}.{i % 200 + 1}"
        records.append(Record(owner, "A", addr))
        names.append(f"{owner}.{ZONE}")
        addrs.append(addr)
    return zone_text(ZONE, records), names, addrs


# --------------------------------------------------------------------------------------------
# measuring one run


async def run_engine(name: str, job: Job, args: argparse.Namespace) -> Counts:
    if name == "raw":
        return await run_raw(job, sockets=args.raw_sockets)
    if name == "raw_drain":
        return await run_raw_drain(job, sockets=args.raw_sockets)
    if name == "raw_await":
        return await run_raw_await(job, sockets=args.raw_sockets)
    if name == "dnspython":
        return await run_dnspython(job)
    if name == "svcprobe":
        return await svcprobe_adapter.run_svcprobe(job, sockets=args.raw_sockets)
    raise ValueError(name)


async def measure(name: str, server: KnotServer, names: list[str], addrs: list[str], args) -> dict:
    # Warm-up: sockets, caches, code paths; not counted.
    warm = Job(server.nameserver, names, addrs, total=min(2000, args.max_lookups),
               concurrency=args.concurrency, deadline=time.monotonic() + args.warmup)
    await run_engine(name, warm, args)

    job = Job(server.nameserver, names, addrs, total=args.max_lookups,
              concurrency=args.concurrency, deadline=time.monotonic() + args.duration)
    knot_cpu0 = proc_cpu_seconds(server.pid)
    wait0 = runqueue_wait_seconds(os.getpid())
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    counts = await run_engine(name, job, args)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    wait = runqueue_wait_seconds(os.getpid()) - wait0
    knot_cpu = proc_cpu_seconds(server.pid) - knot_cpu0
    return {
        "ok": counts.ok,
        "wrong": counts.wrong,
        "failed": counts.failed,
        "detail": counts.detail,
        "seconds": round(elapsed, 4),
        "lookups_per_second": round(counts.ok / elapsed, 1) if elapsed > 0 else 0.0,
        "client_cpu_seconds": round(cpu, 3),
        "lookups_per_client_cpu_second": round(counts.done / cpu, 1) if cpu > 0 else None,
        "client_cpu_utilisation": round(cpu / elapsed, 3) if elapsed > 0 else None,
        # Share of the run the client was ready to run but another process had its CPU.
        "client_runqueue_wait": round(wait / elapsed, 3) if elapsed > 0 else None,
        "server_cpu_utilisation": round(knot_cpu / elapsed, 3) if elapsed > 0 else None,
    }


def run_problem(res: dict) -> str | None:
    """Why a run does not count as having run properly, or None."""
    done = res["ok"] + res["wrong"] + res["failed"]
    if done == 0:
        return "no lookup completed"
    if res["wrong"]:
        return f"{res['wrong']} wrong answers"
    if res["failed"] > 0.01 * done:
        return f"{res['failed']} of {done} lookups failed (timeouts/errors)"
    return None


# --------------------------------------------------------------------------------------------
# reporting


def summarise(runs: dict[str, list[dict]], pending: dict[str, str]) -> dict:
    summary: dict = {}
    for name, all_runs in runs.items():
        # Rounds in which another process held the client's CPU for a noticeable share of the
        # time say more about that process than about the engine: leave them out when at least
        # one undisturbed round exists.
        clean = [r for r in all_runs if (r["client_runqueue_wait"] or 0) <= DISTURBED_WAIT]
        rs = clean or all_runs
        rates = [r["lookups_per_second"] for r in rs]
        cpu_rates = [r["lookups_per_client_cpu_second"] for r in rs if r["lookups_per_client_cpu_second"]]
        summary[name] = {
            "rounds_used": [r["round"] for r in rs],
            "rounds_total": len(all_runs),
            "rounds_disturbed": sum(1 for r in all_runs if r not in clean),
            "lookups_per_second_median": statistics.median(rates),
            "lookups_per_second_min": min(rates),
            "lookups_per_second_max": max(rates),
            "lookups_per_client_cpu_second_median": statistics.median(cpu_rates) if cpu_rates else None,
            "client_cpu_utilisation_median": statistics.median(r["client_cpu_utilisation"] for r in rs),
            "client_runqueue_wait_median": statistics.median(r["client_runqueue_wait"] for r in rs),
            "server_cpu_utilisation_median": statistics.median(r["server_cpu_utilisation"] for r in rs),
        }
    for name, why in pending.items():
        summary[name] = {"pending": why}

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = summary.get(a, {}).get(key), summary.get(b, {}).get(key)
        return round(x / y, 3) if x and y else None

    pairs = (("svcprobe", "raw"), ("svcprobe", "dnspython"), ("svcprobe", "raw_drain"), ("svcprobe", "raw_await"),
             ("raw_drain", "raw"), ("raw_await", "raw"), ("dnspython", "raw"))
    return {
        "engines": summary,
        # The headline: lookups per wall-clock second, medians over rounds.
        "ratios": {f"{a}/{b}": ratio(a, b, "lookups_per_second_median") for a, b in pairs},
        # Less sensitive to other load on the machine: lookups per CPU-second of the client.
        "ratios_per_client_cpu_second": {
            f"{a}/{b}": ratio(a, b, "lookups_per_client_cpu_second_median") for a, b in pairs
        },
    }


def print_table(result: dict) -> None:
    eng = result["summary"]["engines"]
    print()
    print(f"{'engine':<11} {'lookups/s':>10} {'(min..max)':>19} {'per CPU-s':>10} {'client CPU':>10} "
          f"{'CPU wait':>9} {'knotd CPU':>10} {'rounds':>7}")
    for name in result["parameters"]["engines"]:
        s = eng.get(name, {})
        if "pending" in s:
            print(f"{name:<11} {'pending':>10}  {s['pending']}")
            continue
        if not s:
            continue
        rng = f"{s['lookups_per_second_min']:.0f}..{s['lookups_per_second_max']:.0f}"
        cpu_rate = s["lookups_per_client_cpu_second_median"]
        print(
            f"{name:<11} {s['lookups_per_second_median']:>10.0f} {rng:>19} "
            f"{(cpu_rate or 0):>10.0f} {s['client_cpu_utilisation_median']:>10.0%} "
            f"{s['client_runqueue_wait_median']:>9.0%} {s['server_cpu_utilisation_median']:>10.0%} "
            f"{len(s['rounds_used']):>3}/{s['rounds_total']:<3}"
        )
    print()
    print("(medians over the rounds in which the client waited <= "
          f"{DISTURBED_WAIT:.0%} of the time for its CPU, when any did: 'rounds' = used/all)")
    print()
    per_cpu = result["summary"]["ratios_per_client_cpu_second"]
    print(f"  {'ratio':<20} {'lookups/s':>10} {'per CPU-s':>10}")
    for key, value in result["summary"]["ratios"].items():
        cells = [f"{v:.2f}" if v is not None else "n/a" for v in (value, per_cpu[key])]
        print(f"  {key:<20} {cells[0]:>10} {cells[1]:>10}")
    print()


def environment(server: KnotServer, knotd: str) -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        knot_version = subprocess.run([knotd, "--version"], capture_output=True, text=True).stdout.split()[-1]
    except (OSError, IndexError):
        knot_version = "unknown"
    commit = git_commit()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "python": platform.python_version(),
        "dnspython": dns.version.version,
        "knot": knot_version,
        "cpu_model": cpu_model,
        "cpus_online": os.cpu_count(),
        "client_cpus": sorted(os.sched_getaffinity(0)),
        "server_cpus": sorted(os.sched_getaffinity(server.pid)) if server.pid else None,
        "loadavg_at_start": os.getloadavg(),
        "server": f"{server.address}@{server.port}",
    }


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run: 1 round of 1.5 s per engine")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of %(default)s")
    p.add_argument("--services", type=int, default=2000, help="Services in the zone = names queried")
    p.add_argument("--rounds", type=int, help="rounds; engines run interleaved, median taken (7; quick 1)")
    p.add_argument("--duration", type=float, help="seconds per measured run (2; quick 1.5)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each run (0.3)")
    p.add_argument("--max-lookups", type=int, default=1_000_000, help="cap on lookups per run")
    p.add_argument("--concurrency", type=int, default=100, help="lookups in flight")
    p.add_argument("--raw-sockets", type=int, default=4, help="UDP sockets of the raw loops (and of svcprobe's engine)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU to pin knotd to; -1: no pinning")
    p.add_argument("--out", default=str(REPO / "bench" / "results.json"), help="JSON results file")
    args = p.parse_args(argv)
    defaults = {"rounds": 1, "duration": 1.5, "warmup": 0.3} if args.quick else {
        "rounds": 7, "duration": 2.0, "warmup": 0.3}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engine(s) {sorted(unknown)}; known: {', '.join(ENGINES)}")
    for key in ("services", "rounds", "max_lookups", "concurrency", "raw_sockets"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        p.error("--duration must be in (0, 120] seconds and --warmup in [0, 60]")
    return args


async def main_async(args: argparse.Namespace) -> int:
    knotd, _ = find_knot()
    zone, names, addrs = service_zone(args.services)
    order = list(range(len(names)))
    random.Random(2024).shuffle(order)  # same order for every engine
    names = [names[i] for i in order]
    addrs = [addrs[i] for i in order]

    pending: dict[str, str] = {}
    engines = []
    for name in args.engines:
        if name == "svcprobe":
            why = svcprobe_adapter.availability()
            if why:
                pending[name] = why
                print(f"svcprobe: pending ({why})", file=sys.stderr)
                continue
        engines.append(name)

    server_cpu = None if args.server_cpu < 0 else args.server_cpu
    runs: dict[str, list[dict]] = {name: [] for name in engines}
    problems: list[str] = []
    with KnotServer({ZONE: zone}, cpu=server_cpu, log_level="warning") as server:
        env = environment(server, knotd)
        print(f"knotd {env['knot']} at {env['server']} (CPUs {env['server_cpus']}), "
              f"client on CPUs {env['client_cpus']}; {len(names)} names; "
              f"{args.rounds} round(s) x {args.duration:g}s per engine, {args.concurrency} in flight",
              file=sys.stderr)
        for rnd in range(args.rounds):
            rotation = engines[rnd % len(engines):] + engines[:rnd % len(engines)] if engines else []
            for name in rotation:
                try:
                    res = await measure(name, server, names, addrs, args)
                except Exception as exc:
                    problems.append(f"{name} round {rnd + 1}: {type(exc).__name__}: {exc}")
                    print(f"  round {rnd + 1} {name:<10} FAILED: {exc!r}", file=sys.stderr)
                    continue
                res["round"] = rnd + 1
                why = run_problem(res)
                if why:
                    problems.append(f"{name} round {rnd + 1}: {why} {res['detail']}".strip())
                runs[name].append(res)
                print(f"  round {rnd + 1} {name:<10} {res['lookups_per_second']:>9.0f} lookups/s "
                      f"({res['ok']} ok, {res['wrong']} wrong, {res['failed']} failed in {res['seconds']:.2f}s; "
                      f"client CPU {res['client_cpu_utilisation']:.0%}, "
                      f"waiting for CPU {res['client_runqueue_wait']:.0%}, "
                      f"knotd CPU {res['server_cpu_utilisation']:.0%})"
                      + (" [disturbed]" if (res["client_runqueue_wait"] or 0) > DISTURBED_WAIT else "")
                      + (f"  <- {why}" if why else ""),
                      file=sys.stderr)
    runs = {k: v for k, v in runs.items() if v}
    env["loadavg_at_end"] = os.getloadavg()
    busy = max(env["loadavg_at_start"][0], env["loadavg_at_end"][0])
    if busy > 2.5:
        print(f"note: the machine was busy (1-minute load average up to {busy:.1f}); lookups/s are "
              "disturbed by other processes, the per-CPU-second ratios less so", file=sys.stderr)

    result = {
        "benchmark": "dns-lookups-one-core",
        "parameters": {
            "engines": args.engines,
            "services": args.services,
            "qtype": "A",
            "rounds": args.rounds,
            "duration_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "max_lookups": args.max_lookups,
            "concurrency": args.concurrency,
            "raw_sockets": args.raw_sockets,
            "quick": args.quick,
        },
        "environment": env,
        "runs": runs,
        "summary": summarise(runs, pending),
        "problems": problems,
    }
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {out}", file=sys.stderr)
    if problems:
        print("benchmark problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
