"""Hostile HTTP query strings and hostile DNS replies, against the running agent.

HTTP: arbitrary query strings on /api/v1/results and /debug/probe get 200, 400, 404 or 429,
never a server error, and /debug/probe never makes the agent ask DNS about anything but the
Services of its inventory. DNS: a server that answers with arbitrary bytes (random, or a valid
reply mutated) leaves every lookup with one of the documented outcomes and the engine usable.

Hypothesis runs in a worker thread (blocking HTTP, or lookups handed to the agent's loop) while
the agent runs on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from agent.demo.dnsserver import DnsServer, records_from_inventory
from agent.inventory import manifests
from agent.probes.dns import DnsEngine
from tests.reliability.common import ZONE, Svc, agent_settings, manifest, run_agent

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]
FUZZ = hsettings(max_examples=250, deadline=None, database=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))
SERVICES = [Svc("app", f"svc{i}", f"127.0.0.{10 + i}", 80) for i in range(3)]

texts = st.text(max_size=40) | st.sampled_from(
    ["app/svc0", "app/svc1", "app/nope", "app/", "/svc0", "APP/SVC0", "app/svc0/x", "true", "false",
     "dns", "tcp", "app", "svc0", "127.0.0.1", "svc0.app.svc.cluster.local", "%00", "a" * 5000, "../../etc"])
keys = st.sampled_from(["service", "failing", "namespace", "check", "x", "", "Service"]) | st.text(max_size=10)


def _quote(s: str) -> str:
    return urllib.request.quote(s, safe="")


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # raw, unescaped bytes as a hostile client sends them
        return draw(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                                   exclude_characters="#"), max_size=60))
    if draw(st.booleans()):  # one well-formed parameter, hostile value
        return f"{draw(st.sampled_from(['service', 'namespace', 'check', 'failing']))}={_quote(draw(texts))}"
    pairs = draw(st.lists(st.tuples(keys, texts), max_size=4))
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs)


async def test_http_query_fuzz(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(manifest(SERVICES))
    server = DnsServer(records_from_inventory(manifests.load_file(str(inventory)).inventory, ZONE), zone=ZONE)
    host, port = await server.start("127.0.0.1", 0)
    try:
        async with run_agent(agent_settings(f"{host}:{port}", inventory, **{"tcp.enabled": False})) as r:
            seen: dict[str, set[int]] = {"/api/v1/results": set(), "/debug/probe": set()}

            @FUZZ
            @given(st.sampled_from(sorted(seen)), query_strings())
            @example("/debug/probe", "service=app%2Fnope")
            @example("/api/v1/results", "service=" + "a" * 9000)  # over aiohttp's line limit
            @example("/debug/probe", "service=app%2Fsvc0")
            @example("/api/v1/results", "service=svc0&namespace=app&check=dns&failing=false")
            def one(path: str, query: str) -> None:
                url = f"{r.base}{path}?{query}"
                try:
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        status = resp.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                    exc.close()
                assert status in (200, 400, 404, 429), (url, status)
                seen[path].add(status)

            await asyncio.to_thread(one)
            assert {200, 400} <= seen["/api/v1/results"], seen
            assert {400, 404} <= seen["/debug/probe"], seen
            # Every name the DNS server was ever asked is one of an inventory Service's walk
            # (glibc goes on past the NODATA of a missing family: svc0.svc.<zone>. too).
            names = {s.name for s in SERVICES}
            strays = {q for q, _, _ in server.queries
                      if not q.endswith(".in-addr.arpa.")  # the ClusterIPs' PTR names
                      and not any(q.startswith(f"{n}.") or f".{n}.app." in q for n in names)}
            assert not strays, sorted(strays)[:10]
            await r.sweeps(1)  # and the agent still sweeps
            # Hostile requests (including over-long lines aiohttp rejects) never log errors.
            assert not [rec for rec in caplog.records if rec.levelname in ("ERROR", "CRITICAL")], \
                [rec.getMessage()[:200] for rec in caplog.records if rec.levelname == "ERROR"][:3]
    finally:
        await server.stop()


# -- DNS replies -------------------------------------------------------------------------------
class _Hostile(asyncio.DatagramProtocol):
    """Answers each query with `self.reply(query_bytes)`."""

    def __init__(self) -> None:
        self.reply = lambda q: b""
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.reply(data)
        if out and self.transport is not None:
            self.transport.sendto(out, addr)


def _valid_reply(query: bytes) -> bytes:
    q = dns.message.from_wire(query)
    resp = dns.message.make_response(q)
    resp.answer.append(dns.rrset.from_text(q.question[0].name, 5, "IN", "A", "10.0.0.1", "10.0.0.2"))
    return resp.to_wire()


@st.composite
def replies(draw: st.DrawFn):  # -> Callable[[bytes], bytes]
    kind = draw(st.sampled_from(["random", "id+random", "mutated", "truncated", "header-only"]))
    tail = draw(st.binary(max_size=300))
    flips = draw(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=8))
    cut = draw(st.integers(0, 120))

    def reply(query: bytes) -> bytes:
        if kind == "random":
            return tail
        if kind == "id+random":
            return query[:2] + tail
        if kind == "header-only":
            return query[:2] + tail[:10]
        valid = bytearray(_valid_reply(query))
        if kind == "truncated":
            return bytes(valid[:max(cut, 0)])
        for pos, val in flips:
            if 2 <= pos < len(valid):  # keep the id so the engine does look at it
                valid[pos] = val
        return bytes(valid)
    return reply


async def test_dns_reply_fuzz() -> None:
    loop = asyncio.get_running_loop()
    proto = _Hostile()
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0),
                                                       family=socket.AF_INET)
    server = transport.get_extra_info("sockname")
    engine = DnsEngine(timeout=0.05, attempts=1, sockets=2)
    outcomes: set[str] = set()
    try:
        @FUZZ
        @given(replies(), st.sampled_from(["A", "AAAA", "SRV", "CNAME"]))
        def one(reply, qtype: str) -> None:  # type: ignore[no-untyped-def]
            proto.reply = reply
            fut = asyncio.run_coroutine_threadsafe(
                engine.lookup(["web.app.svc.cluster.local."], qtype, [server], trace=True), loop)
            w = fut.result(10)
            assert w.finished
            assert w.status in {"answer", "nodata", "nxdomain", "servfail", "refused", "timeout", "error"}, w
            outcomes.add(w.status)

        await asyncio.to_thread(one)
        assert "timeout" in outcomes and len(outcomes) >= 2, outcomes
        # The engine is still usable: a valid reply gives an answer.
        proto.reply = _valid_reply
        w = await engine.lookup(["web.app.svc.cluster.local."], "A", [server])
        assert w.status == "answer" and sorted(w.records) == ["10.0.0.1", "10.0.0.2"], w
    finally:
        await engine.close()
        transport.close()
