"""Cost of one full sweep over 10,000 Services, and of /metrics at the series budget.

    python -m bench.sweep_cost [--quick] [--services 10000] [--out FILE]   (normally run by bench/run)

Setup (all on loopback; knotd and the listeners pinned to CPU 0, the measured child to CPU 1):

- ``--services`` ClusterIP Services (IPv4) in 100 namespaces, one TCP port each, 10 ready
  endpoints each (``--endpoints``; 100,000 endpoint addresses in the inventory at 10k Services).
  ClusterIPs are 16 loopback addresses (127.63.0.1-16) and endpoints 16 others (127.64.0.1-16),
  each listening on the same 4 port numbers (``bench/listeners.py``): many Services share a
  few real listeners, so every connect reaches one.
- knotd serves ``cluster.local`` with every Service's A record (its ClusterIP). 15% of the
  Services answer with another address (``wrong_answer``) and 10% have a ClusterIP port nobody
  listens on (``refused``): about 2,500 failing-Service series, more than the default series
  budget (1,000), so /metrics is measured *at* the budget.
- Agent settings: defaults, except: the nameserver is that knotd, ``dns.srv: false``, ``dns.ptr: false``,
  ``dns.qtypes: [A, AAAA]``, ``dns.forms``: all four, no sharding (one agent probes everything,
  as ``svcprobe check`` does), and a query budget high enough not to wait: one sweep as fast as
  the limits allow (``Agent.check_once``, concurrency 64). So per Service: 8 lookups (4 forms x
  A+AAAA; the search walk makes that 14 queries) and 11 connects (ClusterIP + 10 endpoints).

The child process (``--child``) builds the inventory, runs ``runner.Agent`` (plan + one sweep),
renders /metrics 5 times and scrapes it 5 times over HTTP from the agent's own server on
127.0.0.1. Reported: CPU-seconds and wall time per phase (``getrusage``), RSS after each phase,
peak RSS (VmHWM, and the parent's ``wait4`` ru_maxrss), checks by result, event-loop lag of the
sweep, /metrics size, series, render and scrape times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.common import REPO, cpu_self, environment, free_port, log, peak_rss_mib, rss_mib, taskset, write_json

CIP_ADDRS = [f"127.63.0.{i}" for i in range(1, 17)]
EP_ADDRS = [f"127.64.0.{i}" for i in range(1, 17)]
ZONE = "cluster.local."
WRONG_ADDR = "127.63.1.1"


def wrong_dns(i: int) -> bool:
    return i % 20 in (1, 2, 3)  # 15%


def refused_tcp(i: int) -> bool:
    return i % 10 == 5  # 10%


def layout(i: int, ports: list[int], closed_port: int, endpoints: int) -> dict[str, Any]:
    cip = CIP_ADDRS[i % len(CIP_ADDRS)]
    port = closed_port if refused_tcp(i) else ports[i % len(ports)]
    eps = [EP_ADDRS[(i + j) % len(EP_ADDRS)] for j in range(min(endpoints, len(EP_ADDRS)))]
    return {"ns": f"ns-{i % 100:02d}", "name": f"svc-{i:05d}", "cip": cip, "port": port,
            "ep_port": ports[(i + 1) % len(ports)], "eps": eps}


def zone_text(services: int, ports: list[int], closed_port: int, endpoints: int) -> str:
    from tests.support.knot import Record, zone_text as zt

    records = []
    for i in range(services):
        s = layout(i, ports, closed_port, endpoints)
        records.append(Record(f"{s['name']}.{s['ns']}.svc", "A", WRONG_ADDR if wrong_dns(i) else s["cip"]))
    return zt(ZONE, records)


# --------------------------------------------------------------------------------------------
# the measured child


def _build_inventory(services: int, ports: list[int], closed_port: int, endpoints: int):
    from agent import model
    from bench.synth import endpoint_slice, service

    svcs, slices = [], []
    for i in range(services):
        s = layout(i, ports, closed_port, endpoints)
        svc = service(s["ns"], s["name"], cluster_ips=(s["cip"],), ports=(("http", "TCP", s["port"]),))
        svcs.append(svc)
        slices.append(endpoint_slice(svc, s["eps"], (("http", "TCP", s["ep_port"]),)))
    return model.Inventory(svcs, slices)


class _Source:
    def __init__(self, inventory) -> None:
        self.inventory = inventory
        self.changed = asyncio.Event()

    async def run(self) -> None:  # pragma: no cover
        return None


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp
    from aiohttp import web

    from agent import runner, server, settings as settings_mod
    from agent.health import Health

    phases: dict[str, Any] = {}

    def mark(name: str, cpu0: float, wall0: float, **extra: Any) -> None:
        phases[name] = {"cpu_seconds": round(cpu_self() - cpu0, 3),
                        "wall_seconds": round(time.perf_counter() - wall0, 3),
                        "rss_mib_after": round(rss_mib(), 1), **extra}

    phases["start"] = {"rss_mib_after": round(rss_mib(), 1)}
    ports = [int(p) for p in args.ports.split(",")]
    c0, w0 = cpu_self(), time.perf_counter()
    inventory = _build_inventory(args.services, ports, args.closed_port, args.endpoints)
    mark("inventory", c0, w0, services=len(inventory), endpoints=inventory.endpoint_count())

    s = settings_mod.load(overrides={
        "dns.nameservers": [args.nameserver], "dns.cluster_domain": "cluster.local", "dns.search": [],
        "dns.ndots": 5, "dns.srv": False, "dns.ptr": False, "dns.qtypes": ["A", "AAAA"],
        "dns.forms": ["short", "namespace", "svc", "fqdn"], "dns.query_budget_per_second": 10_000_000.0,
        "dns.query_budget_burst": 1_000_000, "dns.timeout_seconds": 2.0, "dns.attempts": 2,
        "tcp.timeout_seconds": 2.0, "listen": "127.0.0.1:0", "pod_ip": "", "sharding.peers_service": "",
        "tcp.deny_cidrs": [],  # the listeners are on loopback, denied by default
    })
    health = Health(inventory_services=len(inventory), inventory_endpoints=inventory.endpoint_count(),
                    inventory_synced=True)
    agent = runner.build(s, source=_Source(inventory), health=health)
    c0, w0 = cpu_self(), time.perf_counter()
    plan = agent.plan()
    mark("plan", c0, w0, dns_checks=len(plan.dns), tcp_checks=len(plan.tcp))

    c0, w0 = cpu_self(), time.perf_counter()
    stats = await agent.check_once()  # plans again (as every sweep does), sweeps, closes DNS sockets
    by_result: dict[str, int] = {}
    for r in agent.store.snapshot():
        k = f"{r.check.kind}:{r.result}"
        by_result[k] = by_result.get(k, 0) + 1
    mark("sweep", c0, w0, checks=stats.checks, duration_seconds=round(stats.duration, 3),
         checks_per_second=round(stats.checks / stats.duration, 1) if stats.duration else None,
         dns_queries_sent=agent.dns.queries_sent, results=by_result, sweep=stats.to_json())

    renders, body = [], b""
    c0, w0 = cpu_self(), time.perf_counter()
    for _ in range(5):
        t = time.perf_counter()
        body, _ = agent.metrics.render(None)
        renders.append(time.perf_counter() - t)
    lines = body.decode().splitlines()
    series = sum(1 for line in lines if line and not line.startswith("#"))
    failing = sum(1 for line in lines if line.startswith("svcprobe_service_failing{"))
    mark("render", c0, w0, renders=5, render_seconds_median=round(statistics.median(renders), 4),
         bytes=len(body), series=series, failing_series=failing,
         failing_series_total=len(agent.store.failing_series()), series_budget=s.metrics.series_budget)

    http_runner = web.AppRunner(server.make_app(agent.context()), access_log=None)
    await http_runner.setup()
    site = web.TCPSite(http_runner, "127.0.0.1", 0)
    await site.start()
    host, port = http_runner.addresses[0][:2]
    scrapes = []
    c0, w0 = cpu_self(), time.perf_counter()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                t = time.perf_counter()
                async with session.get(f"http://{host}:{port}/metrics") as resp:
                    got = await resp.read()
                    assert resp.status == 200, resp.status
                scrapes.append(time.perf_counter() - t)
    finally:
        await http_runner.cleanup()
    mark("scrape", c0, w0, scrapes=5, scrape_seconds_median=round(statistics.median(scrapes), 4),
         scrape_seconds_max=round(max(scrapes), 4), bytes=len(got))
    return {"phases": phases, "peak_rss_mib": round(peak_rss_mib(), 1), "cpu_seconds_total": round(cpu_self(), 3)}


# --------------------------------------------------------------------------------------------
# the parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sweep_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--services", type=int)
    p.add_argument("--endpoints", type=int, default=10, help="ready endpoints per Service (at most 16)")
    p.add_argument("--no-pin", dest="pin", action="store_false")
    p.add_argument("--out", default=str(REPO / "bench" / "results-sweep.json"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--nameserver", help=argparse.SUPPRESS)
    p.add_argument("--ports", help=argparse.SUPPRESS)
    p.add_argument("--closed-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.services is None:
        args.services = 1000 if args.quick else 10_000
    if args.services < 1 or not 1 <= args.endpoints <= 16:
        p.error("--services >= 1, --endpoints in 1..16")
    return args


def run(args: argparse.Namespace) -> int:
    from bench.listeners import Listeners
    from tests.support.knot import KnotServer

    server_cpu = 0 if args.pin else None
    problems: list[str] = []
    result: dict[str, Any] = {"benchmark": "sweep-cost", "parameters": {
        "services": args.services, "endpoints_per_service": args.endpoints, "forms": 4, "qtypes": ["A", "AAAA"],
        "srv": False, "tcp": True, "quick": args.quick, "pinned": args.pin}, "environment": environment()}
    with Listeners(CIP_ADDRS + EP_ADDRS, 4, cpu=server_cpu, same_ports=True, max_seconds=1800) as lis:
        ports = sorted({p for _, p in lis.endpoints})
        closed = free_port(CIP_ADDRS[0])  # nothing listens there: ClusterIP connects are refused
        zone = zone_text(args.services, ports, closed, args.endpoints)
        t = time.perf_counter()
        with KnotServer({ZONE: zone}, cpu=server_cpu, log_level="warning", timeout=120) as knot:
            log(f"sweep_cost: knotd with {args.services} Services up in {time.perf_counter() - t:.1f}s; "
                f"{len(lis.endpoints)} listeners; one sweep of {args.services} Services x 8 lookups + "
                f"{1 + args.endpoints} connects")
            cmd = [*taskset(1 if args.pin else None), sys.executable, "-m", "bench.sweep_cost", "--child",
                   "--services", str(args.services), "--endpoints", str(args.endpoints),
                   "--nameserver", f"{knot.address}:{knot.port}", "--ports", ",".join(map(str, ports)),
                   "--closed-port", str(closed)]
            knot_cpu0 = _cpu(knot.pid)
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=REPO,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
            out = proc.stdout.read()  # type: ignore[union-attr]
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            knot_cpu = _cpu(knot.pid) - knot_cpu0
        accepted = lis.stop()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        problems.append(f"sweep child exited {code}")
        child: dict[str, Any] = {}
    else:
        child = json.loads(out.decode().strip().splitlines()[-1])
    result.update({
        "child": child,
        "child_wall_seconds": round(wall, 2),
        "child_cpu_seconds_rusage": round(ru.ru_utime + ru.ru_stime, 3),
        "child_peak_rss_mib_rusage": round(ru.ru_maxrss / 1024, 1),
        "knotd_cpu_seconds": round(knot_cpu, 2),
        "listener_accepted_connections": accepted,
        "problems": problems,
    })
    if child:
        sweep = child["phases"]["sweep"]
        exp_dns = args.services * 8
        exp_tcp = args.services * (1 + args.endpoints)
        if sweep["checks"] != exp_dns + exp_tcp:
            problems.append(f"sweep ran {sweep['checks']} checks, expected {exp_dns + exp_tcp}")
        res = sweep["results"]
        bad = {k: v for k, v in res.items() if k.split(":")[1] in ("timeout", "error")}
        if sum(bad.values()) > 0.01 * sweep["checks"]:
            problems.append(f"too many timeouts/errors in the sweep: {bad}")
        print_table(result)
    write_json(args.out, result)
    if problems:
        log("sweep_cost problems:\n  " + "\n  ".join(problems))
        return 1
    return 0


def _cpu(pid: int | None) -> float:
    from bench.common import proc_cpu_seconds

    return proc_cpu_seconds(pid) if pid else 0.0


def print_table(result: dict[str, Any]) -> None:
    ph = result["child"]["phases"]
    n = result["parameters"]["services"]
    print(f"\nCost of one full sweep: {n} Services (4 forms x A+AAAA, TCP to ClusterIP + "
          f"{result['parameters']['endpoints_per_service']} endpoints), one agent, as fast as the limits allow")
    print(f"{'phase':<10} {'CPU-s':>8} {'wall s':>8} {'RSS after MiB':>14}  detail")
    for name in ("inventory", "plan", "sweep", "render", "scrape"):
        p = ph[name]
        if name == "inventory":
            d = f"{p['services']} Services, {p['endpoints']} endpoints"
        elif name == "plan":
            d = f"{p['dns_checks']} DNS + {p['tcp_checks']} TCP checks"
        elif name == "sweep":
            d = (f"{p['checks']} checks, {p['checks_per_second']:.0f}/s, {p['dns_queries_sent']} DNS queries; "
                 f"loop lag {p['sweep']['event_loop_lag_seconds'] * 1000:.0f} ms")
        elif name == "render":
            d = (f"5 renders, median {p['render_seconds_median'] * 1000:.1f} ms; {p['bytes']} bytes, {p['series']} "
                 f"series ({p['failing_series']} of {p['failing_series_total']} failing-Service series; budget "
                 f"{p['series_budget']})")
        else:
            d = (f"5 HTTP scrapes, median {p['scrape_seconds_median'] * 1000:.1f} ms, "
                 f"max {p['scrape_seconds_max'] * 1000:.1f} ms")
        print(f"{name:<10} {p['cpu_seconds']:>8.2f} {p['wall_seconds']:>8.2f} {p['rss_mib_after']:>14.1f}  {d}")
    print(f"child: {result['child_cpu_seconds_rusage']:.2f} CPU-s in all, "
          f"peak RSS {result['child']['peak_rss_mib']:.1f} MiB "
          f"(ru_maxrss {result['child_peak_rss_mib_rusage']:.1f} MiB), "
          f"start RSS {ph['start']['rss_mib_after']:.1f} MiB; knotd {result['knotd_cpu_seconds']:.2f} CPU-s")
    print(f"results: {ph['sweep']['results']}\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        out = asyncio.run(_child(args))
        print(json.dumps(out))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
