"""Faults injected for real in a network namespace: lossy, slow and dead DNS; TCP backends
that never answer, reset, or accept and hang. Each fault is followed by recovery, and the
agent's state (inventory, checks, metrics) is checked intact afterwards.

Inside the namespace (addresses from common.Netns): the demo's authoritative DNS server on
addr(2):53, a relay in front of it on addr(1):53 (the agent's nameserver; "slow" and "down"
act on the relay), TCP backends that accept and hold every connection on port 80 (ClusterIPs
addr(3..5)) and 8080 (endpoints addr(6..8)). The agent runs in this test's process, outside.
Loss is `iptables -m statistic --mode random` on the namespace's side of the veth.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reliability.common import (
    Netns,
    Running,
    Svc,
    agent_settings,
    by_result,
    counter,
    failing_series,
    manifest,
    netns,
    run_agent,
    wait_for,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]
DNS_BAD = {"timeout", "refused", "error", "servfail"}


class Bed:
    def __init__(self, ns: Netns, inventory: Path) -> None:
        self.ns, self.inventory = ns, inventory
        self.services = [Svc("app", f"svc{i}", ns.addr(3 + i), 80, ((ns.addr(6 + i), 8080),)) for i in range(3)]
        self.relay = None

    def start_relay(self, delay: float) -> None:
        if self.relay is not None:
            self.ns.kill(self.relay)
        self.relay = self.ns.spawn(sys.executable, "-m", "tests.reliability.nsd", "relay",
                                   "--listen", f"{self.ns.addr(1)}:53", "--upstream", f"{self.ns.addr(2)}:53",
                                   "--delay", str(delay))

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.ns.kill(self.relay)
            self.relay = None


@contextlib.asynccontextmanager
async def bed(tmp_path: Path) -> AsyncIterator[tuple[Bed, Running]]:
    with netns() as ns:
        b = Bed(ns, tmp_path / "inventory.yaml")
        b.inventory.write_text(manifest(b.services))
        ns.spawn(sys.executable, "-m", "tests.reliability.nsd", "serve", "--listen", f"{ns.addr(2)}:53",
                 "--inventory", str(b.inventory), "--hold", "0.0.0.0:80", "--hold", "0.0.0.0:8080")
        b.start_relay(0.0)
        async with run_agent(agent_settings(f"{ns.addr(1)}:53", b.inventory)) as r:
            await all_passing(r, "the healthy baseline")
            yield b, r


async def all_passing(r: Running, what: str, sweeps: int = 10) -> dict:
    """Wait (at most `sweeps` sweeps) for a sweep in which every check passed."""
    for _ in range(sweeps):
        body = await r.sweeps(1)
        if body["sweep"]["failing"] == 0 and body["summary"]["failing"] == 0:
            return body
    pytest.fail(f"{what}: still failing after {sweeps} sweeps: {body['summary']}")


def _checks(results: list[dict]) -> list[tuple]:
    """What identifies each result's check, sorted: equal lists mean the same checks ran."""
    return sorted((x["service"], x["check"], x["form"], x["qtype"], x["path"], x["address"]) for x in results)


async def state_intact(r: Running, baseline: dict) -> None:
    """After recovery: same inventory, same checks, no failing series left over."""
    body = await all_passing(r, "recovery")
    assert body["inventory"]["services"] == 3 and body["inventory"]["last_error"] is None
    assert body["summary"]["checks"] == baseline["summary"]["checks"]
    assert _checks(body["results"]) == _checks(baseline["results"])
    m = await r.metrics()
    assert failing_series(m) == set()
    assert m["svcprobe_inventory_services"][0][1] == 3


@pytest.mark.parametrize("loss", [0.1, 0.5])
async def test_lossy_dns(tmp_path: Path, loss: float) -> None:
    async with bed(tmp_path) as (b, r):
        baseline = await r.results()
        before = await r.metrics()
        b.ns.iptables("-A", "INPUT", "-i", b.ns.inside, "-p", "udp", "--dport", "53",
                      "-m", "statistic", "--mode", "random", "--probability", str(loss), "-j", "DROP")
        seen: dict[str, int] = {}
        for _ in range(6):  # every sweep completes despite the loss
            body = await r.sweeps(1)
            for k, v in by_result(body, "dns").items():
                seen[k] = seen.get(k, 0) + v
            assert by_result(body, "tcp") == {"ok": 6}  # TCP is another path: untouched
        during = await r.metrics()
        assert b.ns.dropped() > 0, "the statistic rule dropped nothing: the fault was not injected"
        # Loss shows up as timeouts (after retries), never as a wrong or garbled answer.
        assert set(seen) <= {"ok", "timeout"}, seen
        ok = counter(during, "svcprobe_dns_lookups_total", result="ok") - \
            counter(before, "svcprobe_dns_lookups_total", result="ok")
        timeouts = counter(during, "svcprobe_dns_lookups_total", result="timeout") - \
            counter(before, "svcprobe_dns_lookups_total", result="timeout")
        print(f"loss {loss:.0%}: lookups ok {ok:.0f}, timeout {timeouts:.0f}; sweep results {seen}; "
              f"packets dropped {b.ns.dropped()}")
        assert ok > 0  # retries get most lookups through
        if loss >= 0.5:
            # 2 attempts at 50% loss: about a quarter of lookups time out; the metrics say so.
            assert timeouts > 0 and seen.get("timeout", 0) > 0
            assert any(k[2] == "dns" and k[4] == "timeout" for k in failing_series(during)) or \
                seen.get("timeout", 0) > 0
        b.ns.iptables("-F", "INPUT")
        await state_intact(r, baseline)


async def test_dns_down_then_back(tmp_path: Path) -> None:
    async with bed(tmp_path) as (b, r):
        baseline = await r.results()
        # 1. The server process is gone: the namespace answers with ICMP port unreachable.
        b.stop_relay()
        await r.sweeps(1)  # let a sweep that started before the kill finish
        body = await r.sweeps(2)
        dns = by_result(body, "dns")
        print(f"server process gone: DNS results {dns}")
        assert dns and set(dns) <= DNS_BAD, dns
        assert by_result(body, "tcp") == {"ok": 6}
        m = await r.metrics()
        assert {k[1] for k in failing_series(m) if k[2] == "dns"} == {"svc0", "svc1", "svc2"}
        # 2. The server's host is unreachable in silence (every packet dropped): timeouts, and
        #    sweeps still complete (a lookup gives up after attempts x timeout).
        b.start_relay(0.0)
        b.ns.iptables("-A", "INPUT", "-i", b.ns.inside, "-p", "udp", "--dport", "53", "-j", "DROP")
        b.ns.iptables("-A", "INPUT", "-i", b.ns.inside, "-p", "tcp", "--dport", "53", "-j", "DROP")
        await r.sweeps(1)
        body = await r.sweeps(2)
        assert set(by_result(body, "dns")) == {"timeout"}, by_result(body, "dns")
        assert b.ns.dropped() > 0
        m = await r.metrics()
        assert {(k[1], k[4]) for k in failing_series(m) if k[2] == "dns"} == \
            {("svc0", "timeout"), ("svc1", "timeout"), ("svc2", "timeout")}
        # 3. Back.
        b.ns.iptables("-F", "INPUT")
        await state_intact(r, baseline)


async def test_dns_slow(tmp_path: Path) -> None:
    async with bed(tmp_path) as (b, r):
        baseline = await r.results()
        # Slower than usual but within the timeout (0.4 s): answers pass; the latency is reported.
        b.start_relay(0.25)
        await r.sweeps(1)
        body = await all_passing(r, "a slow but working server")
        dns = [x for x in body["results"] if x["check"] == "dns"]
        assert all(x["duration_seconds"] >= 0.25 for x in dns), [x["duration_seconds"] for x in dns]
        # Slower than timeout x attempts: every lookup times out, sweeps keep completing.
        b.start_relay(1.5)
        await r.sweeps(1)
        body = await r.sweeps(2)
        assert set(by_result(body, "dns")) == {"timeout"}
        assert by_result(body, "tcp") == {"ok": 6}
        # Fast again.
        b.start_relay(0.0)
        await state_intact(r, baseline)


async def test_tcp_backends_silent_reset_and_hanging(tmp_path: Path) -> None:
    async with bed(tmp_path) as (b, r):
        baseline = await r.results()
        ns = b.ns
        # svc0's endpoint never answers a SYN, svc1's endpoint resets, svc2's ClusterIP never answers;
        # every backend that does answer accepts and then holds the connection forever.
        ns.iptables("-A", "INPUT", "-p", "tcp", "-d", ns.addr(6), "--dport", "8080", "-j", "DROP")
        ns.iptables("-A", "INPUT", "-p", "tcp", "-d", ns.addr(7), "--dport", "8080",
                    "-j", "REJECT", "--reject-with", "tcp-reset")
        ns.iptables("-A", "INPUT", "-p", "tcp", "-d", ns.addr(5), "--dport", "80", "-j", "DROP")
        await r.sweeps(1)
        fds = len(os.listdir("/proc/self/fd"))
        for _ in range(4):
            body = await r.sweeps(1)
            assert set(by_result(body, "dns")) == {"ok"}  # DNS is another path: untouched
        m = await r.metrics()
        assert {k for k in failing_series(m) if k[2] == "tcp"} == {
            ("app", "svc0", "tcp", "endpoint", "timeout"),
            ("app", "svc1", "tcp", "endpoint", "refused"),
            ("app", "svc2", "tcp", "cluster_ip", "timeout"),
        }
        assert counter(m, "svcprobe_tcp_connects_total", result="timeout") > 0
        assert counter(m, "svcprobe_tcp_connects_total", result="refused") > 0
        # Hanging backends hold their side open; the agent closes its side at once: no fd growth.
        assert len(os.listdir("/proc/self/fd")) <= fds + 8
        ns.iptables("-F", "INPUT")
        await state_intact(r, baseline)


async def test_inventory_change_during_dns_outage(tmp_path: Path) -> None:
    """While DNS is down, a Service is removed: its failing series go at once, the others stay
    failing, and after recovery exactly the remaining Services pass."""
    from tests.reliability.common import write_atomically

    async with bed(tmp_path) as (b, r):
        b.stop_relay()
        await r.sweeps(1)
        await r.sweeps(1)
        assert {k[1] for k in failing_series(await r.metrics()) if k[2] == "dns"} == {"svc0", "svc1", "svc2"}
        write_atomically(b.inventory, manifest(b.services[:2]))
        await wait_for(lambda: r.agent.health.inventory_services == 2, "the reload", 10, alive=r.alive)
        assert "svc2" not in {k[1] for k in failing_series(await r.metrics())}
        await r.sweeps(2)
        failing = failing_series(await r.metrics())
        assert {k[1] for k in failing} == {"svc0", "svc1"}, failing
        b.start_relay(0.0)
        body = await all_passing(r, "recovery")
        assert {x["service"] for x in body["results"]} == {"svc0", "svc1"}
        assert failing_series(await r.metrics()) == set()
