"""Cluster load model: what N agents put on cluster DNS and the API server (pure computation).

    python -m bench.cluster_model [--quick] [--nodes 100,1000,5000] [--services 10000] [--out FILE]

No traffic at all: the agent's own planning code (``agent.runner.Agent.plan`` ->
``agent.targeting.assignment.assign`` -> ``agent.targeting.sharding`` -> ``agent.planner``) runs for sampled agents of
a simulated cluster, and the cluster-wide figures are summed over every agent from the same
rendezvous ranking (``agent.targeting.sharding.score``).

The simulated cluster (``bench.synth.realistic_cluster``): ``--services`` Services in 200
namespaces (85% ClusterIP IPv4, 5% dual-stack, 8% headless, 2% ExternalName; ports ``http``
and, on every third, ``metrics``; 10 ready endpoints each), plus the canaries: the API server's
Service (3 endpoints), the cluster DNS Service (CoreDNS replicas: one per 100 nodes, at least
2 -- an assumption) and the agents' own headless Service (one ready endpoint per node). Agent
settings: the defaults (4 forms, A+AAAA, SRV, PTR, hostname records, TCP, ndots 5, interval 30 s, replicas 3, query
budget 100/s, paths: the cluster DNS Service IP and every CoreDNS endpoint for the canaries).

Per agent: DNS queries per sweep when DNS answers as expected (``planner.expected_queries``,
search-walk amplification included), TCP connects per sweep, queries/s it wants (per sweep /
interval) and what the token bucket lets out (at most the budget; the sweep then takes longer
than the interval: the effective sweep period is given). Cluster-wide: the sums over all agents,
API watch connections (svcprobe: one Service and one EndpointSlice watch per agent). Also the
agent's own gauge ``svcprobe_expected_cluster_dns_queries_per_second`` (computed by each sampled
agent from its own share, ``Agent._account_share``) against the simulated sum.

Compared with (documented behaviour; the assumptions are in the output):
- ``every-node``: every agent probes every Service (svcprobe with ``sharding.replicas: 0``).
- ``kubenurse``: each node checks every other kubenurse pod (the full neighbour mesh, by pod IP,
  no DNS), plus the API server directly and by DNS name, its own Service and ingress, every
  5 s; one watch of its own pods' endpoints per node.
- ``goldpinger``: each node calls every other goldpinger pod (by pod IP, no DNS) every 30 s,
  and lists the goldpinger pods from the API server once per refresh (a LIST, no watch).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from typing import Any

from agent import model, planner, settings as settings_mod
from agent.health import Health
from agent.targeting import sharding
from bench.common import REPO, environment, log, percentile, write_json
from bench.synth import endpoint_slice, ipv4, realistic_cluster, service
from tests.support.builders import FixedSource

AGENT_NS, AGENT_SVC = "monitoring", "svcprobe"
# The agent's own defaults, so the model follows them when they change.
_DEFAULTS = settings_mod.Settings()
INTERVAL = _DEFAULTS.scheduler.interval_seconds
BUDGET = _DEFAULTS.dns.query_budget_per_second
REPLICAS = _DEFAULTS.sharding.replicas

# Assumptions for the other tools (their documented defaults and behaviour).
KUBENURSE = {"interval_seconds": 5.0, "dns_queries_per_round": 4,
             "note": "every 5 s each node checks every other kubenurse pod by pod IP (full neighbour mesh, no DNS), "
                     "the API server directly and by its Service DNS name, and its own Service and ingress; "
                     "DNS: 2 names (the API server's, its own Service's) x A+AAAA = 4 queries per round, search "
                     "walk not counted; API: one watch per node (its own endpoints)",
             "watches_per_node": 1}
GOLDPINGER = {"interval_seconds": 30.0, "dns_queries_per_round": 0,
              "note": "every 30 s each node calls every other goldpinger pod by pod IP (no DNS by default) and "
                      "lists the goldpinger pods from the API server once (a LIST per refresh, no watch)",
              "watches_per_node": 0, "lists_per_node_per_interval": 1}


def coredns_replicas(nodes: int) -> int:
    return max(2, -(-nodes // 100))


_BASE: dict[int, tuple[list[model.Service], list[model.EndpointSlice]]] = {}


def cluster(n_services: int, nodes: int) -> tuple[model.Inventory, list[str]]:
    if n_services not in _BASE:
        _BASE[n_services] = realistic_cluster(n_services)
    services, slices = (list(x) for x in _BASE[n_services])
    api = service("default", "kubernetes", cluster_ips=("198.18.0.1",), ports=(("https", "TCP", 443),))
    dns = service("kube-system", "kube-dns", cluster_ips=("198.18.0.10",),
                  ports=(("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)))
    agents = [ipv4("198.19.0.0", 1 + i) for i in range(nodes)]
    mine = service(AGENT_NS, AGENT_SVC, headless=True, ports=(("http", "TCP", 9142),))
    services += [api, dns, mine]
    slices += [
        endpoint_slice(api, [ipv4("198.19.250.0", i + 1) for i in range(3)], (("https", "TCP", 6443),)),
        endpoint_slice(dns, [ipv4("198.19.251.0", i + 1) for i in range(coredns_replicas(nodes))],
                       (("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153))),
        endpoint_slice(mine, agents, (("http", "TCP", 9142),)),
    ]
    return model.Inventory(services, slices), agents


def agent_settings(me: str, replicas: int) -> settings_mod.Settings:
    return settings_mod.load(overrides={
        "dns.nameservers": ["198.18.0.10"], "dns.cluster_domain": "cluster.local", "pod_namespace": AGENT_NS,
        "pod_ip": me, "sharding.replicas": replicas, "sharding.peers_service": f"{AGENT_NS}/{AGENT_SVC}",
        "listen": "127.0.0.1:0"})


def plan_of(inventory: model.Inventory, me: str, replicas: int) -> tuple[Any, planner.Plan, Health, float]:
    """The agent's own plan (and its gauge) for this inventory, and the CPU seconds it took."""
    from agent import runner

    health = Health(inventory_synced=True)
    agent = runner.build(agent_settings(me, replicas), source=FixedSource(inventory), health=health)
    t0 = time.process_time()
    plan = agent.plan()
    return agent, plan, health, time.process_time() - t0


_COSTS: dict[tuple[str, str], tuple[int, int]] = {}


def per_service_costs(inventory: model.Inventory, ps: planner.PlanSettings,
                      skip: frozenset[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(DNS queries, TCP connects) per sweep for each Service but `skip`, resolver path only
    (the same for every cluster size: computed once)."""
    out = _COSTS
    for svc in inventory.services.values():
        if svc.key in skip or svc.key in out:
            continue
        p = planner.plan(inventory, ps, [svc])
        q = sum(planner.expected_queries(c, ps.cluster_domain) for c in p.dns)
        t = sum(1 for c in p.tcp if not c.no_endpoints)
        out[svc.key] = (q, t)
    return out


def simulate(nodes: int, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    t0 = time.process_time()
    inventory, agents = cluster(args.services, nodes)
    # One agent's full plan: its canary load (the same on every agent) and the settings.
    planned = {agents[0]: plan_of(inventory, agents[0], REPLICAS)}
    agent0 = planned[agents[0]][0]
    ps = agent0.plan_settings
    zone = ps.cluster_domain
    t = agent0.current_assignment()
    canaries = t.canaries
    costs = per_service_costs(inventory, ps, canaries)
    canary_plan = planner.plan(inventory, ps, [inventory.services[k] for k in canaries], paths=t.paths,
                               path_services=canaries)
    canary_q = sum(planner.expected_queries(c, zone) for c in canary_plan.dns)
    canary_t = sum(1 for c in canary_plan.tcp if not c.no_endpoints)
    selected = [s for s in inventory.services.values() if s.key not in canaries]

    # Every Service's owners from the full rendezvous ranking (what all agents compute together);
    # a sample of Services when asked to (the quick run, or --service-sample).
    sample = selected if not args.service_sample or args.service_sample >= len(selected) else \
        rng.sample(selected, args.service_sample)
    scale = len(selected) / len(sample)
    load_q = dict.fromkeys(agents, 0.0)
    load_t = dict.fromkeys(agents, 0.0)
    owned = dict.fromkeys(agents, 0.0)
    owner_counts = []
    owners_of: dict[tuple[str, str], set[str]] = {}
    for svc in sample:
        owners = sharding.owners(sharding.service_key(*svc.key), agents, REPLICAS)
        owners_of[svc.key] = set(owners)
        owner_counts.append(len(owners))
        q, tc = costs[svc.key]
        for a in owners:
            load_q[a] += q * scale
            load_t[a] += tc * scale
            owned[a] += scale
    # Every agent also asks a sample of the Services it owns (paths.sample_services) on the other
    # DNS paths (the cluster DNS Service IP and each CoreDNS replica): agent 0's, as for the canaries.
    sample_q = sum(planner.expected_queries(c, zone) for c in planned[agents[0]][1].dns
                   if c.path != "resolver" and (c.namespace, c.service) not in canaries)
    per_agent_q = [load_q[a] + canary_q + sample_q for a in agents]
    per_agent_t = [load_t[a] + canary_t for a in agents]
    sum_q_all = sum(costs[s.key][0] for s in selected)
    sum_t_all = sum(costs[s.key][1] for s in selected)
    copies = min(REPLICAS, nodes)
    # every Service has exactly `copies` owners
    exact_cluster_q = sum_q_all * copies + (canary_q + sample_q) * nodes

    # The agents' own code path for a few agents: their plan must match the ranking, and their
    # gauge is compared with the simulated sum.
    checks = []
    for me in [agents[0], *rng.sample(agents[1:], min(args.agent_sample - 1, nodes - 1))]:
        agent, plan, health, plan_cpu = planned.get(me) or plan_of(inventory, me, REPLICAS)
        tt = agent.current_assignment()
        mine_keys = {s.key for s in tt.services} - set(canaries)
        q = sum(planner.expected_queries(c, zone) for c in plan.dns)
        # For every ranked Service: in this agent's plan exactly when the ranking makes it an owner.
        agrees = all((me in owners) == (key in mine_keys) for key, owners in owners_of.items())
        checks.append({"agent": me, "owned": tt.owned, "queries_per_sweep": q,
                       "tcp_per_sweep": sum(1 for c in plan.tcp if not c.no_endpoints),
                       "plan_cpu_seconds": round(plan_cpu, 3),
                       "gauge_cluster_qps": round(health.expected_cluster_qps, 2),
                       "gauge_error": round(health.expected_cluster_qps / (exact_cluster_q / INTERVAL) - 1, 4),
                       "agrees_with_ranking": agrees})

    def dist(xs: list[float], nd: int = 1) -> dict[str, float]:
        return {"min": round(min(xs), nd), "p50": round(statistics.median(xs), nd),
                "p99": round(percentile(xs, 0.99) or 0, nd), "max": round(max(xs), nd),
                "mean": round(statistics.fmean(xs), nd)}

    want_qps = [q / INTERVAL for q in per_agent_q]
    sent_qps = [min(BUDGET, x) for x in want_qps]
    sweep_period = [max(INTERVAL, q / BUDGET) for q in per_agent_q]
    every_q = sum_q_all + canary_q
    every_t = sum_t_all + canary_t
    gauge_errors = [c["gauge_error"] for c in checks]
    res = {
        "nodes": nodes,
        "services": len(selected),
        "canaries": sorted("/".join(k) for k in canaries),
        "coredns_replicas": coredns_replicas(nodes),
        "canary_queries_per_sweep": canary_q,
        "path_sample_queries_per_sweep": sample_q,
        "canary_tcp_per_sweep": canary_t,
        "services_sampled_for_ranking": len(sample),
        "owners_per_service": sorted(set(owner_counts)),
        "svcprobe": {
            "services_per_agent": dist([owned[a] for a in agents]),
            "dns_queries_per_sweep_per_agent": dist(per_agent_q),
            "dns_qps_wanted_per_agent": dist(want_qps),
            "dns_qps_sent_per_agent": dist(sent_qps),
            "sweep_period_seconds": dist(sweep_period),
            "tcp_connects_per_second_per_agent": dist([x / INTERVAL for x in per_agent_t]),
            "cluster_dns_qps_wanted": round(sum(want_qps), 1),
            "cluster_dns_qps_exact": round(exact_cluster_q / INTERVAL, 1),
            "cluster_dns_qps_sent": round(sum(sent_qps), 1),
            "cluster_tcp_connects_per_second": round(sum(per_agent_t) / INTERVAL, 1),
            "api_watch_connections": 2 * nodes,
            "service_copies_per_sweep": copies,
        },
        "every_node": {
            "dns_qps_wanted_per_agent": round(every_q / INTERVAL, 1),
            "dns_qps_sent_per_agent": round(min(BUDGET, every_q / INTERVAL), 1),
            "sweep_period_seconds": round(max(INTERVAL, every_q / BUDGET), 1),
            "cluster_dns_qps_wanted": round(every_q * nodes / INTERVAL, 1),
            "cluster_dns_qps_sent": round(min(BUDGET, every_q / INTERVAL) * nodes, 1),
            "tcp_connects_per_second_per_agent": round(every_t / INTERVAL, 1),
            "cluster_tcp_connects_per_second": round(every_t * nodes / INTERVAL, 1),
            "api_watch_connections": 2 * nodes,
            "service_copies_per_sweep": nodes,
        },
        "kubenurse": {
            "dns_qps_per_agent": round(KUBENURSE["dns_queries_per_round"] / KUBENURSE["interval_seconds"], 2),
            "cluster_dns_qps": round(KUBENURSE["dns_queries_per_round"] / KUBENURSE["interval_seconds"] * nodes, 1),
            "checks_per_second_per_agent": round((nodes - 1 + 4) / KUBENURSE["interval_seconds"], 1),
            "cluster_checks_per_second": round(nodes * (nodes - 1 + 4) / KUBENURSE["interval_seconds"], 1),
            "api_watch_connections": KUBENURSE["watches_per_node"] * nodes,
            "service_copies_per_sweep": 0,
        },
        "goldpinger": {
            "dns_qps_per_agent": 0.0,
            "cluster_dns_qps": 0.0,
            "checks_per_second_per_agent": round((nodes - 1) / GOLDPINGER["interval_seconds"], 1),
            "cluster_checks_per_second": round(nodes * (nodes - 1) / GOLDPINGER["interval_seconds"], 1),
            "api_watch_connections": 0,
            "api_lists_per_second": round(nodes / GOLDPINGER["interval_seconds"], 2),
            "service_copies_per_sweep": 0,
        },
        "agent_plan_cpu_seconds": dist([c["plan_cpu_seconds"] for c in checks], 3),
        "agent_gauge_check": {
            "agents_sampled": len(checks),
            "all_agree_with_ranking": all(c["agrees_with_ranking"] for c in checks),
            "relative_error": {"min": min(gauge_errors), "median": statistics.median(gauge_errors),
                               "max": max(gauge_errors)},
            "agents": checks,
        },
        "cpu_seconds": round(time.process_time() - t0, 2),
    }
    return res


def print_table(results: list[dict[str, Any]]) -> None:
    print("\nCluster load model (10,000 Services; per agent p50 [max]; cluster-wide sums; "
          f"interval {INTERVAL:g} s, budget {BUDGET:g}/s)")
    print(f"{'nodes':>6} {'tool':<11} {'DNS q/s/agent':>16} {'cluster DNS q/s':>16} {'sweep s':>12} "
          f"{'conn/s/agent':>14} {'cluster conn/s':>15} {'API watches':>11} {'copies':>7}")
    for r in results:
        s, e, k, g = r["svcprobe"], r["every_node"], r["kubenurse"], r["goldpinger"]
        n = r["nodes"]
        print(f"{n:>6} {'svcprobe':<11} {s['dns_qps_sent_per_agent']['p50']:>7.1f} "
              f"[{s['dns_qps_wanted_per_agent']['max']:>6.1f}] {s['cluster_dns_qps_sent']:>16.0f} "
              f"{s['sweep_period_seconds']['p50']:>5.0f} [{s['sweep_period_seconds']['max']:>4.0f}] "
              f"{s['tcp_connects_per_second_per_agent']['p50']:>14.1f} {s['cluster_tcp_connects_per_second']:>15.0f} "
              f"{s['api_watch_connections']:>11} {s['service_copies_per_sweep']:>7}")
        print(f"{'':>6} {'every-node':<11} {e['dns_qps_sent_per_agent']:>7.1f} [{e['dns_qps_wanted_per_agent']:>6.0f}] "
              f"{e['cluster_dns_qps_sent']:>16.0f} {e['sweep_period_seconds']:>12.0f} "
              f"{e['tcp_connects_per_second_per_agent']:>14.1f} {e['cluster_tcp_connects_per_second']:>15.0f} "
              f"{e['api_watch_connections']:>11} {e['service_copies_per_sweep']:>7}")
        for name, m in (("kubenurse", k), ("goldpinger", g)):
            print(f"{'':>6} {name:<11} {m['dns_qps_per_agent']:>16.1f} {m['cluster_dns_qps']:>16.0f} {'':>12} "
                  f"{m['checks_per_second_per_agent']:>14.1f} {m['cluster_checks_per_second']:>15.0f} "
                  f"{m['api_watch_connections']:>11} {m['service_copies_per_sweep']:>7}")
        gc = r["agent_gauge_check"]
        print(f"{'':>6} svcprobe gauge vs simulated cluster DNS q/s ({s['cluster_dns_qps_exact']:.0f} wanted): "
              f"relative error {gc['relative_error']['min']:+.1%}..{gc['relative_error']['max']:+.1%} over "
              f"{gc['agents_sampled']} agents; plans agree with the ranking: {gc['all_agree_with_ranking']}; "
              f"one agent's plan() "
              f"{r['agent_plan_cpu_seconds']['p50']:.2f} CPU-s")
    print("  ('[..]': wanted before the query budget; 'sweep s': effective sweep period p50 [max]; conn/s: TCP"
          " connects (svcprobe) or mesh checks (kubenurse, goldpinger); copies: agents probing each Service)")
    print()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cluster_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--nodes", default="100,1000,5000")
    p.add_argument("--services", type=int, default=10_000)
    p.add_argument("--service-sample", type=int, help="rank only this many Services (scaled up); default all "
                   "(quick: 500)")
    p.add_argument("--agent-sample", type=int, help="agents whose own plan is computed (8; quick 3)")
    p.add_argument("--out", default=str(REPO / "bench" / "results-cluster.json"))
    args = p.parse_args(argv)
    args.nodes = [int(n) for n in args.nodes.split(",") if n]
    if args.service_sample is None:
        args.service_sample = 300 if args.quick else 0
    if args.agent_sample is None:
        args.agent_sample = 1 if args.quick else 6
    if any(n < 4 for n in args.nodes) or args.services < 1 or args.agent_sample < 1:
        p.error("--nodes each >= 4, --services >= 1, --agent-sample >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(7)
    results = []
    for n in args.nodes:
        log(f"cluster_model: {n} nodes ...")
        results.append(simulate(n, args, rng))
        log(f"  done in {results[-1]['cpu_seconds']:.1f} CPU-s")
    print_table(results)
    write_json(args.out, {"benchmark": "cluster-load-model",
                          "parameters": {"nodes": args.nodes, "services": args.services, "interval_seconds": INTERVAL,
                                         "query_budget_per_second": BUDGET, "replicas": REPLICAS,
                                         "service_sample": args.service_sample, "agent_sample": args.agent_sample,
                                         "quick": args.quick, "kubenurse": KUBENURSE, "goldpinger": GOLDPINGER},
                          "environment": environment(), "results": results, "problems": []})
    return 0


if __name__ == "__main__":
    sys.exit(main())
