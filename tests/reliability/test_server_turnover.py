"""CoreDNS pods come and go: the endpoint path asks each ready replica directly, so over a
cluster's life an agent meets hundreds of DNS server addresses. A departed replica's address
may drop UDP silently. The agent must close the sockets of servers it no longer asks, drop
their per-server series, and never let those series starve the failing-Service gauge that
alerts are built on."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import model, runner, settings as settings_mod
from tests.support.builders import FixedSource, endpoint, endpoint_slice, service

pytestmark = pytest.mark.reliability

ROTATIONS, REPLICAS = 12, 20
DNS_PORTS = (("dns", "UDP", 53), ("dns-tcp", "TCP", 53))


@contextlib.contextmanager
def silent_servers(block: int, n: int) -> Iterator[list[tuple[str, int]]]:
    """n UDP sockets on 127.88.<block>.x that take queries and never answer (a pod that is
    gone but whose address still swallows packets)."""
    socks = []
    try:
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((f"127.88.{block}.{i + 1}", 0))
            socks.append(s)
        yield [s.getsockname()[:2] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster(replicas: list[tuple[str, int]]) -> model.Inventory:
    # kube-dns's replicas listen on a port of their own here (loopback sockets), which the
    # endpoint path takes from the slice's dns port: one slice per replica.
    slices = [endpoint_slice(f"kube-dns-{i}", endpoint(addr), service="kube-dns", namespace="kube-system",
                             ports=(("dns", "UDP", port),))
              for i, (addr, port) in enumerate(replicas)]
    services = [service("kube-dns", "kube-system", cluster_ips=("198.18.0.10",), ports=DNS_PORTS),
                service("web", "shop", cluster_ips=("198.18.0.20",))]
    return model.Inventory(services, slices)


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_departed_dns_servers_take_their_sockets_and_series_with_them() -> None:
    s = settings_mod.load(overrides={"dns.nameservers": ("127.0.0.1:9",), "inventory.file": "unused",
                                     "dns.timeout_seconds": 0.2, "dns.attempts": 1, "tcp.enabled": False,
                                     "paths.cluster_ip": False, "dns.srv": False, "dns.forms": ("fqdn",),
                                     "metrics.series_budget": 100})
    s = dataclasses.replace(s, dns=dataclasses.replace(s.dns, query_budget_per_second=1e6,
                                                       query_budget_burst=100_000))
    with silent_servers(0, REPLICAS) as first:
        source = FixedSource(cluster(first))
        agent = runner.build(s, source=source)
        await agent.scheduler.sweep(agent.plan(), window=0)
        baseline = fds()
        try:
            samples = []
            for block in range(1, ROTATIONS + 1):
                with silent_servers(block, REPLICAS) as replicas:
                    source.inventory = cluster(replicas)
                    await agent.scheduler.sweep(agent.plan(), window=0)
                    samples.append(fds() - REPLICAS)  # the silent servers are the test's own fds
            exposition = agent.metrics.render(None)[0].decode()
        finally:
            await agent.dns.close()
    print(f"\n[server turnover] fds {baseline - REPLICAS} -> {samples} over {ROTATIONS} rotations of {REPLICAS}")
    assert max(samples) <= baseline - REPLICAS + 8 * REPLICAS  # at most the current replicas' pools
    assert samples[-1] <= samples[0] + 2
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    servers = {smp.labels["server"] for smp in families["svcprobe_dns_lookups"].samples}
    assert len(servers - {"127.0.0.1:9"}) <= REPLICAS  # only the replicas of the last rotation
    # Every endpoint-path lookup timed out, so the canary Services are failing: their series
    # are exported although the per-server counters took a large share of the budget.
    failing = families["svcprobe_service_failing"].samples
    assert {(smp.labels["service"], smp.labels["path"]) for smp in failing} >= {("kube-dns", "endpoint")}
    assert agent.store.series_dropped == 0
