"""How often each endpoint is connected to (tcp.endpoint_interval_seconds): real listeners on
loopback count the connects application pods would see in their logs."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator

import pytest

from agent import model, runner, settings
from agent.health import Health
from tests.support.builders import FixedSource
from tests.support.processes import free_port

SWEEPS = 24


class Counting:
    """Listeners on loopback that count accepted connections, per address."""

    def __init__(self) -> None:
        self.accepts: dict[str, int] = {}
        self.servers: list[asyncio.Server] = []

    async def listen(self, address: str, port: int) -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepts[address] = self.accepts.get(address, 0) + 1
            writer.close()

        self.servers.append(await asyncio.start_server(accepted, address, port))


@pytest.fixture
async def backends() -> AsyncIterator[Counting]:
    c = Counting()
    try:
        yield c
    finally:
        for s in c.servers:
            s.close()
            await s.wait_closed()


def inventory(port: int, endpoints: list[str]) -> model.Inventory:
    svc = model.Service("shop", "web", model.ServiceType.CLUSTER_IP, (ipaddress.ip_address("127.0.81.1"),), False,
                        (model.ServicePort("http", "TCP", port),))
    eps = tuple(model.Endpoint((ipaddress.ip_address(a),), True) for a in endpoints)
    sl = model.EndpointSlice("shop", "web-x", "web", "IPv4", eps, (model.EndpointPort("http", "TCP", port),))
    return model.Inventory([svc], [sl])


def agent(inv: model.Inventory, endpoint_interval: float) -> runner.Agent:
    s = settings.load(env={}, file_data={
        "dns": {"nameservers": ["127.0.0.53"], "cluster_domain": "cluster.local"},  # never asked: dns off below
        "tcp": {"deny_cidrs": [], "endpoint_interval_seconds": endpoint_interval},
        "scheduler": {"interval_seconds": 1.0},
        "selection": {"services": ["shop/web"]},
        "paths": {"dns_service": ""},
    })
    health = Health()
    health.note_inventory(1, 0)
    a = runner.build(s, source=FixedSource(inv), health=health)
    a.plan_settings = dataclasses.replace(a.plan_settings, forms=(), srv=False, ptr=False)  # TCP only
    return a


@pytest.mark.parametrize(("endpoint_interval", "per_sweep"), [(0.0, 1.0), (4.0, 0.25)])
async def test_endpoints_are_probed_at_their_own_pace(backends: Counting, endpoint_interval: float,
                                                     per_sweep: float) -> None:
    port = free_port()
    endpoints = [f"127.0.81.{i}" for i in range(10, 18)]
    for address in ["127.0.81.1", *endpoints]:
        await backends.listen(address, port)
    a = agent(inventory(port, endpoints), endpoint_interval)
    for _ in range(SWEEPS):
        await a.scheduler.sweep(a.plan(), window=0)
        # Every endpoint keeps a current result, probed this sweep or not.
        assert sum(1 for r in a.store.latest() if r.check.path == "endpoint") == len(endpoints)
    await a.dns.close()
    assert backends.accepts["127.0.81.1"] == SWEEPS  # the ClusterIP: every sweep
    per_endpoint = [backends.accepts.get(e, 0) for e in endpoints]
    # The first sweep probes each (no result yet), then each sweep its share.
    assert all(1 + SWEEPS * per_sweep - 3 <= n <= 1 + SWEEPS * per_sweep + 1 for n in per_endpoint), per_endpoint
    print(f"endpoint_interval {endpoint_interval}s: connects per endpoint over {SWEEPS} sweeps: {per_endpoint}")


async def test_check_probes_every_endpoint(backends: Counting) -> None:
    port = free_port()
    endpoints = [f"127.0.81.{i}" for i in range(20, 24)]
    for address in ["127.0.81.1", *endpoints]:
        await backends.listen(address, port)
    a = agent(inventory(port, endpoints), 600.0)
    for _ in range(2):
        await a.check_once()
    assert all(backends.accepts.get(e) == 2 for e in endpoints), backends.accepts
