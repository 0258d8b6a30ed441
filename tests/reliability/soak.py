"""Soak: the agent for a long time against a churning inventory; resources must stay flat.

    python -m tests.reliability.soak --minutes 30 [--services 20] [--interval 5] [--json out.json]

Runs in one process, on loopback only: the demo's DNS server (its records follow every
inventory rewrite; a few Services have no DNS record, and some endpoints have no listener, so
failing series keep appearing and disappearing), TCP listeners for the rest, and the agent with
its HTTP server, at its default DNS query budget (or `--budget` queries/s). Every `--churn` seconds the
inventory file is rewritten with Services added and removed and endpoints changed.

Sampled every 2 s: RSS and open fds of the process, asyncio tasks, sweeps, sweep lag, and the
exported svcprobe_service_failing series, which must all belong to Services of the inventory
file (checked just before each rewrite, when the agent has had time to reload it).

Pass criteria (also used by tests/reliability/test_soak.py): RSS of the last third within
`rss_slack` of the first third (medians, after a warm-up tenth), fds and tasks of the last third
at most the first third's maximum plus a few, no stale series, sweeps completing in every
third, and the worst sweep lag under two intervals. Exit status 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from agent import runner, settings as settings_mod
from agent.demo.dnsserver import DnsServer, records_from_inventory
from agent.inventory import manifests
from tests.reliability.common import ZONE, Svc, agent_settings, manifest, write_atomically

PORT = 18080


def addresses(block: int) -> tuple[list[str], list[str], set[str]]:
    """ClusterIPs and endpoints in 127.<block>.0.0/16 (a random block per run, so runs can
    overlap), and the endpoints left without a listener (endpoint TCP refused)."""
    cluster_ips = [f"127.{block}.0.{i}" for i in range(1, 33)]
    endpoints = [f"127.{block}.1.{i}" for i in range(1, 49)]
    return cluster_ips, endpoints, set(endpoints[-6:])


@dataclasses.dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int
    tasks: int
    sweeps: int
    lag: float
    failing: int


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Churn:
    def __init__(self, n: int, rng: random.Random, endpoints: list[str], cluster_ips: list[str]) -> None:
        self.rng, self.n, self.gen = rng, n, 0
        self.endpoints, self.cluster_ips = endpoints, cluster_ips
        self.services: dict[str, Svc] = {}
        self.no_dns: set[str] = set()
        for _ in range(n):
            self._add()

    def _add(self) -> None:
        # Names come from a pool three times the inventory's size: Services go and come back
        # under the same names with new addresses, as in a cluster. (Ever-new names would also
        # grow the DNS engine's query-template cache, bounded at 200,000 templates.)
        self.gen += 1
        free = [i for i in range(3 * self.n) if f"svc-{i}" not in self.services]
        name = f"svc-{self.rng.choice(free)}"
        eps = tuple((a, PORT) for a in self.rng.sample(self.endpoints, self.rng.randint(0, 3)))
        self.services[name] = Svc(f"ns{self.gen % 3}", name, self.rng.choice(self.cluster_ips), PORT, eps)
        if self.rng.random() < 0.1:
            self.no_dns.add(name)

    def step(self) -> None:
        """Remove a few Services, add a few, move some endpoints."""
        for name in self.rng.sample(sorted(self.services), min(len(self.services), self.rng.randint(1, 4))):
            del self.services[name]
            self.no_dns.discard(name)
        while len(self.services) < self.n + self.rng.randint(-3, 3):
            self._add()
        for name in self.rng.sample(sorted(self.services), min(len(self.services), 3)):
            s = self.services[name]
            eps = tuple((a, PORT) for a in self.rng.sample(self.endpoints, self.rng.randint(0, 3)))
            self.services[name] = dataclasses.replace(s, endpoints=eps)

    def keys(self) -> set[tuple[str, str]]:
        return {(s.namespace, s.name) for s in self.services.values()}

    def write(self, path: Path, dns: DnsServer) -> None:
        text = manifest(self.services.values())
        inventory = manifests.parse_documents(text).inventory
        records = records_from_inventory(inventory, ZONE)
        for name in self.no_dns:
            s = self.services[name]
            base = f"{s.name}.{s.namespace}.svc.{ZONE}."
            for key in [k for k in records if k == base or k.endswith("." + base)]:
                del records[key]
        dns.set_records(records)
        write_atomically(path, text)


async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _failing_series(http: aiohttp.ClientSession, base: str) -> set[tuple[str, str]]:
    async with http.get(base + "/metrics") as resp:
        text = await resp.text()
    out = set()
    for fam in text_string_to_metric_families(text):
        if fam.name == "svcprobe_service_failing":
            out |= {(s.labels["namespace"], s.labels["service"]) for s in fam.samples if s.value == 1}
    return out


async def soak(*, seconds: float, services: int = 20, interval: float = 5.0, churn: float = 3.0,
               budget: float | None = None, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="svcprobe-soak-"))
    inventory_file = work / "inventory.yaml"
    dns = DnsServer({}, zone=ZONE)
    await dns.start("127.0.0.1", 0)
    listeners: list[asyncio.base_events.Server] = []
    for block in random.Random().sample(range(60, 250), 8):
        cluster_ips, endpoints, dead = addresses(block)
        try:
            for a in cluster_ips + [e for e in endpoints if e not in dead]:
                listeners.append(await asyncio.start_server(_accept, a, PORT, reuse_address=False))
            break
        except OSError:  # taken (another run): another block
            for srv in listeners:
                srv.close()
            listeners = []
    else:
        raise RuntimeError("no free 127.N.0.0/16 block for the soak's listeners")
    ch = Churn(services, rng, endpoints, cluster_ips)
    ch.write(inventory_file, dns)
    defaults = settings_mod.load(overrides={"dns.nameservers": ("127.0.0.1:53",)}).dns
    overrides: dict[str, Any] = {  # the agent's own budget unless told otherwise
        "scheduler.interval_seconds": interval, "dns.timeout_seconds": 0.5,
        "dns.query_budget_per_second": budget or defaults.query_budget_per_second,
        "dns.query_budget_burst": int(budget) if budget else defaults.query_budget_burst}
    budget = overrides["dns.query_budget_per_second"]
    s = agent_settings(f"{dns.address[0]}:{dns.address[1]}", inventory_file, **overrides)
    agent = runner.build(s)
    stop = asyncio.Event()
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(agent.run(stop=stop, on_listening=lambda h, p: listening.set_result(f"http://{h}:{p}")))
    samples: list[Sample] = []
    stale: list[dict[str, Any]] = []
    failing_seen: set[tuple[str, str]] = set()
    rewrites = 0
    try:
        base = await asyncio.wait_for(listening, 10)
        async with aiohttp.ClientSession() as http:
            t0 = time.monotonic()
            next_churn = t0 + churn
            next_sample = t0
            while (now := time.monotonic()) - t0 < seconds:
                if task.done():
                    raise RuntimeError(f"the agent stopped: {task!r}")
                if now >= next_churn:
                    series = await _failing_series(http, base)  # the agent has had `churn` s to reload
                    failing_seen |= series
                    extra = series - ch.keys()
                    if extra:
                        stale.append({"t": round(now - t0, 1), "series": sorted(extra)})
                    ch.step()
                    ch.write(inventory_file, dns)
                    rewrites += 1
                    next_churn = now + churn
                if now >= next_sample:
                    dns.queries.clear()  # the test server's own query log: not the agent's memory
                    dns.udp_sources.clear()
                    last = agent.store.last_sweep
                    samples.append(Sample(round(now - t0, 1), rss_kib(), fds(), len(asyncio.all_tasks()),
                                          agent.store.sweeps, last.lag if last else 0.0,
                                          last.failing if last else 0))
                    next_sample = now + 2.0
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        for srv in listeners:
            srv.close()
        await dns.stop()
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    return summarize(samples, stale=stale, failing_seen=len(failing_seen), rewrites=rewrites,
                     seconds=seconds, services=services, interval=interval, budget=budget,
                     budget_waits=agent.budget.waits,
                     dns_query_templates=sum(len(c) for c in agent.dns._templates.values()))


def summarize(samples: list[Sample], **meta: Any) -> dict[str, Any]:
    warm = samples[max(1, len(samples) // 10):]
    third = max(1, len(warm) // 3)
    first, last = warm[:third], warm[-third:]
    return {
        **meta,
        "samples": len(samples),
        "rss_kib_first_third_median": statistics.median(x.rss_kib for x in first),
        "rss_kib_last_third_median": statistics.median(x.rss_kib for x in last),
        "fds_first_third_max": max(x.fds for x in first),
        "fds_last_third_max": max(x.fds for x in last),
        "tasks_first_third_max": max(x.tasks for x in first),
        "tasks_last_third_max": max(x.tasks for x in last),
        "sweeps": samples[-1].sweeps,
        "sweeps_per_third": [first[-1].sweeps - first[0].sweeps, warm[2 * third - 1].sweeps - warm[third].sweeps
                             if len(warm) >= 2 * third else 0, last[-1].sweeps - last[0].sweeps],
        "sweep_lag_max_seconds": round(max(x.lag for x in warm), 3),
        "failing_checks_max": max(x.failing for x in warm),
    }


def problems(summary: dict[str, Any], *, rss_slack_kib: int = 10 * 1024) -> list[str]:
    out = []
    s = summary
    if s["rss_kib_last_third_median"] > s["rss_kib_first_third_median"] + rss_slack_kib:
        out.append(f"RSS grew: {s['rss_kib_first_third_median']} -> {s['rss_kib_last_third_median']} KiB")
    if s["fds_last_third_max"] > s["fds_first_third_max"] + 4:
        out.append(f"fds grew: {s['fds_first_third_max']} -> {s['fds_last_third_max']}")
    if s["tasks_last_third_max"] > s["tasks_first_third_max"] + 4:
        out.append(f"tasks grew: {s['tasks_first_third_max']} -> {s['tasks_last_third_max']}")
    if s["stale"]:
        out.append(f"stale failing series: {s['stale'][:3]}")
    if not s["failing_seen"]:
        out.append("no failing series was ever seen: the stale-series check proved nothing")
    if min(s["sweeps_per_third"]) < 1:
        out.append(f"sweeps stalled: {s['sweeps_per_third']} per third")
    if s["sweep_lag_max_seconds"] >= 2 * s["interval"]:
        out.append(f"sweep lag {s['sweep_lag_max_seconds']}s >= two intervals")
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--churn", type=float, default=3.0)
    p.add_argument("--budget", type=float, default=None,
                   help="DNS queries per second (default: the agent's default budget)")
    p.add_argument("--json", help="write the summary here too")
    a = p.parse_args(argv)
    summary = asyncio.run(soak(seconds=a.minutes * 60, services=a.services, interval=a.interval,
                               churn=a.churn, budget=a.budget))
    print(json.dumps(summary, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))
    bad = problems(summary)
    for b in bad:
        print("FAIL:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
