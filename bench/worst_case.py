"""The worst inventory the Kubernetes API accepts, planned by the agent: how long planning
takes (it runs on the event loop), how much memory it peaks at, how many checks come out.

    python -m bench.worst_case [--slices N] [--json]

One ClusterIP Service and one headless Service, each with N EndpointSlices at the API's
limits (1,000 endpoints x 20 addresses, 100 ports per slice; the API allows up to 100
addresses per endpoint, but no controller writes more than one) and 100 named ports. Each
case runs in a fresh child process so that its peak RSS (ru_maxrss) is its own. Nothing is
sent anywhere: this is planning only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import resource
import subprocess
import sys
import time
from typing import Any

N_ENDPOINTS, N_ADDRESSES, N_PORTS = 1000, 20, 100


def build(slices: int) -> Any:
    from agent import model

    def ip(n: int) -> model.IPAddress:
        return ipaddress.ip_address(int(ipaddress.ip_address("198.18.0.0")) + n)

    ports = tuple(model.ServicePort(f"p{i}", "TCP", 10000 + i) for i in range(N_PORTS))
    slice_ports = tuple(model.EndpointPort(f"p{i}", "TCP", 10000 + i) for i in range(N_PORTS))
    services, all_slices = [], []
    n = 0
    for name, headless in (("big", False), ("db", True)):
        services.append(model.Service("bench", name, model.ServiceType.CLUSTER_IP,
                                      () if headless else (ip(10**6),), headless, ports))
        for s in range(slices):
            eps = []
            for _ in range(N_ENDPOINTS):
                eps.append(model.Endpoint(tuple(ip(n + k) for k in range(N_ADDRESSES)), True))
                n += N_ADDRESSES
            all_slices.append(model.EndpointSlice("bench", f"{name}-{s}", name, "IPv4", tuple(eps), slice_ports))
    return model.Inventory(services, all_slices)


def child(slices: int) -> dict[str, Any]:
    from agent import planner, runner, settings

    inventory = build(slices)
    s = settings.load(overrides={"dns.nameservers": ("127.0.0.1:53",)})
    ps = runner.plan_settings(s)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    plan = planner.plan(inventory, ps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "slices_per_service": slices,
        "endpoint_addresses": inventory.endpoint_count(),
        "checks": len(plan),
        "tcp_checks": len(plan.tcp),
        "capped": dict(getattr(plan, "capped", {})),
        "plan_seconds": round(wall, 3),
        "plan_cpu_seconds": round(cpu, 3),
        "peak_rss_mib_before_plan": round(rss_before, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slices", type=int, nargs="+", default=[1, 4], help="slices per Service, one run each")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    rows = []
    for n in args.slices:
        out = subprocess.run([sys.executable, "-m", "bench.worst_case", "--child", str(n)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'slices':>6} {'addresses':>10} {'checks':>8} {'plan s':>7} {'plan CPU s':>10} "
          f"{'RSS before':>10} {'peak RSS':>9}  capped")
    for r in rows:
        print(f"{r['slices_per_service']:>6} {r['endpoint_addresses']:>10} {r['checks']:>8} {r['plan_seconds']:>7} "
              f"{r['plan_cpu_seconds']:>10} {r['peak_rss_mib_before_plan']:>10} {r['peak_rss_mib']:>9}  {r['capped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
