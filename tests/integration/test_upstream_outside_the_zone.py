"""An expected NXDOMAIN is cluster DNS's to give: a failing upstream resolver (SERVFAIL for
the node's own search domains and the bare name, as in an air-gapped cluster) is no fault of a
headless Service scaled to zero (issue 11, item 1). A real DNS server on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from agent import model, planner
from agent.demo.dnsserver import DnsServer, Fault
from agent.probes.dns import DnsEngine
from agent.probes.prober import Prober
from tests.support.builders import ZONE, plan_settings, service

HOST_SEARCH = ("corp.example", "example.internal")


@pytest.fixture
async def upstream_broken() -> AsyncIterator[DnsServer]:
    srv = DnsServer({}, zone=ZONE)  # the cluster zone, with nothing in it: NXDOMAIN
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.stop()


async def test_scaled_to_zero_is_ok_whatever_the_upstream_says(upstream_broken: DnsServer) -> None:
    ps = plan_settings(host_search=HOST_SEARCH, servers=(upstream_broken.address,))
    empty = model.Inventory([service("db", headless=True)], [])
    checks = [c for c in planner.plan(empty, ps).dns if c.qtype in ("A", "AAAA")]
    # Every name outside the cluster zone that a pod's walk would reach: the upstream fails.
    for c in checks:
        for name in planner.search_candidates(c.name, (*c.search, *HOST_SEARCH), c.ndots):
            if not name.endswith(f".{ZONE}."):
                upstream_broken.faults[name] = Fault("servfail")
    assert upstream_broken.faults
    engine = DnsEngine(timeout=0.5, attempts=1, sockets=2)
    prober = Prober(engine, tcp_timeout=0.5)
    try:
        results = [await prober.run(c) for c in checks]
        assert {(r.check.form, r.result) for r in results} == {(f, "ok") for f in ("short", "namespace", "svc", "fqdn")}
        # Judged on every name of the walk (what the check did before), the upstream's SERVFAIL
        # would make it fail.
        whole = dataclasses.replace(next(c for c in checks if c.zone_only), zone_only=False, zone="")
        assert set(HOST_SEARCH) <= set(whole.search)
        assert (await prober.run(whole)).result == "servfail"
    finally:
        await engine.close()
    asked = {q[0] for q in upstream_broken.queries}
    assert all(n.endswith(f".{ZONE}.") for n in asked - set(upstream_broken.faults))
