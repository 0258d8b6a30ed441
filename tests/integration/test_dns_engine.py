"""The DNS engine on the wire, against the in-process server (for the faults real servers
cannot produce on demand: drops, delays, truncation, garbage, SERVFAIL, REFUSED)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.demo.dnsserver import DnsServer, Fault, Records, add
from agent.planner import pod_search_list, search_candidates
from agent.probes.dns import DnsEngine, server_label

ZONE = "cluster.local"


def records() -> Records:
    r: Records = {}
    add(r, "web.shop.svc.cluster.local.", "A", "198.18.0.10")
    add(r, "_http._tcp.web.shop.svc.cluster.local.", "SRV", "0 100 80 web.shop.svc.cluster.local.")
    add(r, "alias.shop.svc.cluster.local.", "CNAME", "api.example.com.")
    for i in range(60):  # too many for a 512-byte UDP reply
        add(r, "big.shop.svc.cluster.local.", "A", f"198.19.1.{i + 1}")
    for i in range(300):
        add(r, f"s{i}.shop.svc.cluster.local.", "A", f"198.18.{i // 250}.{i % 250 + 1}")
    return r


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    srv = DnsServer(records(), zone=ZONE)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.stop()


@pytest.fixture
async def engine() -> AsyncIterator[DnsEngine]:
    eng = DnsEngine(timeout=0.3, attempts=2, sockets=4)
    yield eng
    await eng.close()


SEARCH = pod_search_list("shop", ZONE, ())


@pytest.mark.parametrize(
    ("name", "queries"),
    [
        pytest.param("web", 1, id="short"),
        pytest.param("web.shop", 2, id="namespace"),
        pytest.param("web.shop.svc", 3, id="svc"),
        pytest.param("web.shop.svc.cluster.local", 4, id="fqdn-without-dot"),
        pytest.param("web.shop.svc.cluster.local.", 1, id="fqdn"),
    ],
)
async def test_search_walk_sends_what_a_pod_would(server: DnsServer, engine: DnsEngine, name: str, queries: int) -> None:
    candidates = search_candidates(name, SEARCH, 5)
    lookup = await engine.lookup(candidates, "A", [server.address])
    assert lookup.status == "answer"
    assert lookup.records == ("198.18.0.10",)
    assert lookup.queries == queries
    # The server saw exactly the first `queries` candidates, in order.
    assert [q[0] for q in server.queries] == candidates[:queries]
    assert lookup.qname == "web.shop.svc.cluster.local."


async def test_nxdomain_walks_every_candidate(server: DnsServer, engine: DnsEngine) -> None:
    candidates = search_candidates("nope", SEARCH, 5)
    lookup = await engine.lookup(candidates, "A", [server.address])
    assert lookup.status == "nxdomain"
    assert lookup.queries == len(candidates) == 4
    assert lookup.qname == "nope."


async def test_nodata_ends_the_walk(server: DnsServer, engine: DnsEngine) -> None:
    lookup = await engine.lookup(search_candidates("web", SEARCH, 5), "AAAA", [server.address])
    assert (lookup.status, lookup.queries, lookup.records) == ("nodata", 1, ())


async def test_empty_non_terminal_is_nodata_not_nxdomain(server: DnsServer, engine: DnsEngine) -> None:
    lookup = await engine.lookup(["shop.svc.cluster.local."], "A", [server.address])
    assert lookup.status == "nodata"


@pytest.mark.parametrize(("fault", "status"), [("servfail", "servfail"), ("refused", "refused")])
async def test_error_rcode_ends_the_walk_without_retry(server: DnsServer, engine: DnsEngine, fault: str,
                                                       status: str) -> None:
    candidates = search_candidates("web", SEARCH, 5)
    server.faults[candidates[0]] = Fault(fault)
    lookup = await engine.lookup(candidates, "A", [server.address])
    assert lookup.status == status
    assert lookup.queries == 1
    assert server_label(server.address) in lookup.detail


async def test_silence_times_out_after_every_attempt_on_every_server(engine: DnsEngine) -> None:
    a, b = DnsServer({}, zone=ZONE), DnsServer({}, zone=ZONE)
    for s in (a, b):
        await s.start("127.0.0.1", 0)
        s.default_fault = Fault("drop")
    try:
        lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [a.address, b.address])
    finally:
        await a.stop()
        await b.stop()
    assert lookup.status == "timeout"
    assert lookup.queries == 4  # attempts (2) x servers (2), like libc
    assert len(a.queries) == len(b.queries) == 2
    assert lookup.duration == pytest.approx(4 * engine.timeout)
    assert lookup.server == server_label(b.address)


async def test_retry_moves_to_the_next_nameserver(server: DnsServer, engine: DnsEngine) -> None:
    dead = DnsServer({}, zone=ZONE)
    await dead.start("127.0.0.1", 0)
    dead.default_fault = Fault("drop")
    try:
        lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [dead.address, server.address])
    finally:
        await dead.stop()
    assert (lookup.status, lookup.queries) == ("answer", 2)
    assert lookup.server == server_label(server.address)


async def test_truncated_udp_answer_is_asked_again_over_tcp(server: DnsServer, engine: DnsEngine) -> None:
    lookup = await engine.lookup(["big.shop.svc.cluster.local."], "A", [server.address], trace=True)
    assert lookup.status == "answer"
    assert len(lookup.records) == 60
    assert lookup.queries == 2
    assert [q[2] for q in server.queries] == ["udp", "tcp"]
    assert lookup.trace is not None and [t["transport"] for t in lookup.trace] == ["udp", "tcp"]


async def test_forced_truncation_falls_back_to_tcp(server: DnsServer, engine: DnsEngine) -> None:
    server.faults["web.shop.svc.cluster.local."] = Fault("truncate")
    lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
    assert (lookup.status, lookup.records, lookup.queries) == ("answer", ("198.18.0.10",), 2)


async def test_garbage_reply_is_ignored_like_a_stub_resolver_does(server: DnsServer, engine: DnsEngine) -> None:
    server.faults["web.shop.svc.cluster.local."] = Fault("garbage")
    lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
    assert lookup.status == "timeout"


async def test_malformed_reply_to_our_question_is_an_error_with_detail(server: DnsServer, engine: DnsEngine) -> None:
    server.faults["web.shop.svc.cluster.local."] = Fault("malformed")
    lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
    assert lookup.status == "error"
    assert "malformed reply" in lookup.detail


async def test_delay_is_measured(server: DnsServer, engine: DnsEngine) -> None:
    server.faults["web.shop.svc.cluster.local."] = Fault("delay", seconds=0.08)
    lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
    assert lookup.status == "answer"
    # The reply cannot arrive before the injected delay; the lookup must not report less.
    assert lookup.duration >= 0.08


async def test_srv_and_cname_records(server: DnsServer, engine: DnsEngine) -> None:
    srv = await engine.lookup(["_http._tcp.web.shop.svc.cluster.local."], "SRV", [server.address])
    assert srv.records == ("80 web.shop.svc.cluster.local.",)
    cname = await engine.lookup(search_candidates("alias.shop", SEARCH, 5), "CNAME", [server.address])
    assert cname.records == ("api.example.com.",)


async def test_concurrent_lookups_on_shared_sockets_never_cross(server: DnsServer, engine: DnsEngine) -> None:
    names = [f"s{i}.shop.svc.cluster.local." for i in range(300)]
    lookups = await asyncio.gather(*(engine.lookup([n], "A", [server.address]) for n in names))
    for i, lookup in enumerate(lookups):
        assert lookup.records == (f"198.18.{i // 250}.{i % 250 + 1}",), names[i]
    assert len(server.udp_sources) <= engine.pool_size


async def test_sockets_are_recycled_so_queries_take_fresh_source_ports(server: DnsServer) -> None:
    engine = DnsEngine(timeout=0.3, attempts=1, sockets=1, recycle_after=5)
    try:
        for _ in range(20):
            lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
            assert lookup.status == "answer"
    finally:
        await engine.close()
    assert len(server.udp_sources) >= 4


async def test_ipv6_loopback_server(engine: DnsEngine) -> None:
    srv = DnsServer(records(), zone=ZONE)
    try:
        await srv.start("::1", 0)
    except OSError as exc:  # pragma: no cover - depends on the host having ::1
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [srv.address])
    finally:
        await srv.stop()
    assert lookup.status == "answer"
    assert lookup.server.startswith("[::1]:")
