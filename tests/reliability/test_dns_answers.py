"""Truncated, garbage, malformed, SERVFAIL and REFUSED answers from the DNS server (the demo
server's fault injection, on loopback), each followed by recovery with the agent's state
intact. The agent never crashes, every sweep completes and the metrics name the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.demo.dnsserver import DnsServer, Fault, records_from_inventory
from agent.inventory import manifests
from tests.reliability.common import ZONE, Svc, agent_settings, by_result, counter, failing_series, manifest, run_agent
from tests.reliability.test_netns_faults import all_passing, state_intact

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

# fault -> DNS results a sweep under it may show (nothing else: never ok for a broken answer,
# never wrong_answer for bytes that are not an answer)
EXPECTED = {
    "garbage": {"timeout", "error"},
    "malformed": {"error", "timeout"},
    "servfail": {"servfail"},
    "refused": {"refused"},
}


async def test_bad_answers_then_recovery(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(manifest([Svc("app", f"svc{i}", f"127.0.0.{10 + i}", 80) for i in range(3)]))
    server = DnsServer(records_from_inventory(manifests.load_file(str(inventory)).inventory, ZONE), zone=ZONE)
    host, port = await server.start("127.0.0.1", 0)
    try:
        s = agent_settings(f"{host}:{port}", inventory, **{"tcp.enabled": False})
        async with run_agent(s) as r:
            baseline = await all_passing(r, "baseline")
            # Truncated over UDP: the agent retries over TCP and gets the full answer.
            server.queries.clear()
            server.default_fault = Fault("truncate")
            await r.sweeps(1)
            await all_passing(r, "truncated answers")
            assert {t for _, _, t in server.queries} == {"udp", "tcp"}
            for kind, allowed in EXPECTED.items():
                server.default_fault = Fault(kind)
                await r.sweeps(1)
                body = await r.sweeps(2)
                dns = by_result(body, "dns")
                print(f"{kind}: DNS results {dns}")
                assert dns and set(dns) <= allowed, (kind, dns)
                m = await r.metrics()
                failing = {(k[1], k[4]) for k in failing_series(m)}
                assert {svc for svc, _ in failing} == {"svc0", "svc1", "svc2"}, (kind, failing)
                assert {res for _, res in failing} <= allowed, (kind, failing)
                assert sum(counter(m, "svcprobe_dns_lookups_total", result=x) for x in allowed) > 0
                server.default_fault = None
                await state_intact(r, baseline)
    finally:
        await server.stop()
