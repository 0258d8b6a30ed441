"""The DNS engine on the wire, against the in-process server (for the faults real servers
cannot produce on demand: drops, delays, truncation, garbage, SERVFAIL, REFUSED)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator

import pytest

from agent.demo.dnsserver import DnsServer, Fault, Records, add
from agent.planner import pod_search_list, search_candidates
from agent.probes.budget import TokenBucket
from agent.probes.dns import DnsEngine, Lookup, server_label

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
async def test_search_walk_sends_what_a_pod_would(server: DnsServer, engine: DnsEngine, name: str,
                                                  queries: int) -> None:
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


async def test_renewed_sockets_take_fresh_source_ports(server: DnsServer) -> None:
    """Each sweep renews the sockets: new conntrack flows, as a pod's resolver makes."""
    engine = DnsEngine(timeout=0.3, attempts=1, sockets=1)
    try:
        for sweep in range(3):
            for _ in range(3):
                lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
                assert lookup.status == "answer"
            assert len(server.udp_sources) == sweep + 1  # one socket per sweep
            engine.renew_sockets()
    finally:
        await engine.close()


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


# --------------------------------------------------------------------------- submit() and callbacks


async def wait_for(done: list[Lookup], count: int, limit: float = 10.0) -> None:
    """Let the loop run until `count` lookups have called back (bounded in time)."""
    async with asyncio.timeout(limit):
        while len(done) < count:
            await asyncio.sleep(0.005)


async def test_submit_calls_back_once_from_the_loop_never_inside_submit(server: DnsServer, engine: DnsEngine) -> None:
    done: list[Lookup] = []
    inside = False

    def on_done(lookup: Lookup) -> None:
        assert not inside, "on_done ran inside submit()"
        done.append(lookup)

    inside = True
    handles = [engine.submit(search_candidates(name, SEARCH, 5), "A", [server.address], on_done)
               for name in ("web", "nope", "web.shop")]
    # Failures found before anything is sent (no names, no servers) also call back later.
    handles.append(engine.submit([], "A", [server.address], on_done))
    handles.append(engine.submit(["web.shop.svc.cluster.local."], "A", [], on_done))
    inside = False
    await wait_for(done, 5)
    await asyncio.sleep(0.05)
    assert len(done) == 5 and {id(d) for d in done} == {id(h) for h in handles}
    by_handle = {id(h): h for h in handles}
    web, nope, web_ns, empty, no_servers = (by_handle[id(h)] for h in handles)
    assert (web.status, web.records, web.queries, web.finished) == ("answer", ("198.18.0.10",), 1, True)
    assert (nope.status, nope.queries, nope.qname) == ("nxdomain", 4, "nope.")
    assert (web_ns.status, web_ns.queries) == ("answer", 2)
    assert (empty.status, empty.detail, empty.queries) == ("error", "no candidate names", 0)
    assert (no_servers.status, no_servers.detail, no_servers.queries) == ("error", "no nameservers", 0)


async def test_on_done_may_submit_the_next_lookup(server: DnsServer, engine: DnsEngine) -> None:
    names = [f"s{i}.shop.svc.cluster.local." for i in range(200)]
    done: list[Lookup] = []
    it = iter(names)

    def on_done(lookup: Lookup) -> None:
        done.append(lookup)
        name = next(it, None)
        if name is not None:
            engine.submit([name], "A", [server.address], on_done)

    for _ in range(10):  # ten in flight, each finished lookup starts the next
        engine.submit([next(it)], "A", [server.address], on_done)
    await wait_for(done, len(names))
    got = {d.qname: d.records for d in done}
    assert got == {n: (f"198.18.{i // 250}.{i % 250 + 1}",) for i, n in enumerate(names)}
    assert engine.replies_ignored == 0


async def test_a_failing_callback_does_not_disturb_other_lookups(server: DnsServer, engine: DnsEngine) -> None:
    done: list[Lookup] = []

    def bad(lookup: Lookup) -> None:
        done.append(lookup)
        raise RuntimeError("caller bug")

    for i in range(20):
        engine.submit([f"s{i}.shop.svc.cluster.local."], "A", [server.address], bad)
    await wait_for(done, 20)
    assert all(d.status == "answer" for d in done)


async def test_trace_through_submit(server: DnsServer, engine: DnsEngine) -> None:
    done: list[Lookup] = []
    engine.submit(search_candidates("web.shop", SEARCH, 5), "A", [server.address], done.append, trace=True)
    await wait_for(done, 1)
    trace = done[0].trace
    assert trace is not None and [t["rcode"] for t in trace] == ["NXDOMAIN", "NOERROR"]
    assert [t["qname"] for t in trace] == search_candidates("web.shop", SEARCH, 5)[:2]
    assert trace[1]["records"] == ["198.18.0.10"] and "198.18.0.10" in trace[1]["reply"]
    assert sum(t["duration_seconds"] for t in trace) == pytest.approx(done[0].duration, abs=1e-5)


# --------------------------------------------------------------------------- the timeout sweeper


async def test_sweeper_expires_every_lost_query_and_counts_exactly_the_timeout(server: DnsServer) -> None:
    engine = DnsEngine(timeout=0.2, attempts=2, sockets=2)
    server.default_fault = Fault("drop")
    done: list[Lookup] = []
    try:
        for i in range(30):  # sent at different moments: deadlines spread over the sweep
            engine.submit([f"s{i}.shop.svc.cluster.local."], "A", [server.address], done.append)
            await asyncio.sleep(0.005)
        await wait_for(done, 30)
    finally:
        await engine.close()
    for lookup in done:
        assert (lookup.status, lookup.queries) == ("timeout", 2)
        assert lookup.duration == pytest.approx(2 * 0.2)
        assert "within 0.2s" in lookup.detail
    assert len(server.queries) == 60
    assert engine._sweeper is None and not engine._conns  # nothing left armed or open


async def test_a_reply_later_than_the_timeout_is_a_timeout(server: DnsServer) -> None:
    engine = DnsEngine(timeout=0.1, attempts=1, sockets=1)
    server.faults["web.shop.svc.cluster.local."] = Fault("delay", seconds=0.25)
    try:
        lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
        assert lookup.status == "timeout" and lookup.duration == pytest.approx(0.1)
        # The late reply arrives after its query was given up: ignored and counted.
        async with asyncio.timeout(5):
            while engine.replies_ignored == 0:
                assert await engine.lookup(["s1.shop.svc.cluster.local."], "A", [server.address])
    finally:
        await engine.close()


async def test_answers_after_a_timeout_are_not_delayed_by_the_sweeper(server: DnsServer) -> None:
    engine = DnsEngine(timeout=5.0, attempts=1, sockets=1)
    dead = DnsServer({}, zone=ZONE)
    await dead.start("127.0.0.1", 0)
    dead.default_fault = Fault("drop")
    done: list[Lookup] = []
    try:
        engine.submit(["web.shop.svc.cluster.local."], "A", [dead.address], done.append)  # arms the sweeper
        for i in range(5):
            lookup = await engine.lookup([f"s{i}.shop.svc.cluster.local."], "A", [server.address])
            assert lookup.status == "answer"
        assert done == []  # still waiting for its (long) timeout
    finally:
        await engine.close()
        await dead.stop()
    assert done and done[0].status == "error" and done[0].detail == "DNS engine closed"


# --------------------------------------------------------------------------- connected sockets


def closed_udp_port() -> tuple[str, int]:
    """A loopback UDP port that was free a moment ago: nothing listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()


async def test_closed_port_is_refused_at_once_and_ends_the_lookup(server: DnsServer, engine: DnsEngine) -> None:
    closed = closed_udp_port()
    lookup = await engine.lookup(search_candidates("web", SEARCH, 5), "A", [closed, server.address], trace=True)
    # As glibc does with ECONNREFUSED: the lookup ends, no other server or candidate is tried.
    assert (lookup.status, lookup.queries) == ("refused", 1)
    assert "ICMP port unreachable" in lookup.detail and server_label(closed) in lookup.detail
    assert lookup.server == server_label(closed)
    assert lookup.trace is not None and lookup.trace[0]["rcode"] == "REFUSED"
    assert server.queries == []
    assert lookup.duration < engine.timeout  # refused does not wait for the timeout


async def test_refused_socket_is_replaced_by_a_fresh_one(engine: DnsEngine) -> None:
    closed = closed_udp_port()
    for _ in range(3):
        lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [closed])
        assert lookup.status == "refused"
    # Every socket that saw the ICMP error was closed; the next query takes a fresh one.
    pool = engine._pools[closed]
    assert all(c.closed and c.quota == 0 for c in pool.conns if c is not None)
    assert not any(c.pool is pool for c in engine._conns)


async def test_replies_from_another_address_never_count(engine: DnsEngine) -> None:
    """A responder that answers the right id and question from another port: the connected
    socket does not even receive it, so the query times out."""
    loop = asyncio.get_running_loop()
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.bind(("127.0.0.1", 0))
    other.bind(("127.0.0.1", 0))
    listen.setblocking(False)
    good = DnsServer(records(), zone=ZONE)

    def answer_from_elsewhere() -> None:
        data, addr = listen.recvfrom(4096)
        other.sendto(sync_answer(good, data), addr)

    loop.add_reader(listen.fileno(), answer_from_elsewhere)
    try:
        lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [listen.getsockname()])
    finally:
        loop.remove_reader(listen.fileno())
        listen.close()
        other.close()
    assert (lookup.status, lookup.queries) == ("timeout", 2)


def sync_answer(server: DnsServer, query: bytes) -> bytes:
    import dns.message

    return server.answer(dns.message.from_wire(query)).to_wire()


# --------------------------------------------------------------------------- cancel, close, budget, backlog


async def test_cancelled_lookup_never_calls_back(server: DnsServer, engine: DnsEngine) -> None:
    server.faults["web.shop.svc.cluster.local."] = Fault("delay", seconds=0.1)
    done: list[Lookup] = []
    lookup = engine.submit(["web.shop.svc.cluster.local."], "A", [server.address], done.append)
    await asyncio.sleep(0.01)
    engine.cancel(lookup)
    await asyncio.sleep(0.3)
    assert done == [] and not lookup.finished
    assert all(not c.pending for c in engine._conns)


async def test_awaiting_lookup_cancelled_abandons_it(server: DnsServer, engine: DnsEngine) -> None:
    server.default_fault = Fault("drop")
    task = asyncio.create_task(engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(not c.pending for c in engine._conns)


async def test_close_ends_running_lookups_and_the_engine_stays_usable(server: DnsServer) -> None:
    engine = DnsEngine(timeout=5.0, attempts=1)
    server.default_fault = Fault("drop")
    waiting = [asyncio.create_task(engine.lookup([f"s{i}.shop.svc.cluster.local."], "A", [server.address]))
               for i in range(10)]
    await asyncio.sleep(0.05)
    await engine.close()
    results = await asyncio.gather(*waiting)
    assert all((r.status, r.detail) == ("error", "DNS engine closed") for r in results)
    server.default_fault = None
    lookup = await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])
    assert lookup.status == "answer"
    await engine.close()


async def test_budget_waits_are_scheduled_not_counted(server: DnsServer) -> None:
    bucket = TokenBucket(20.0, 1)  # one query every 50 ms
    engine = DnsEngine(timeout=1.0, attempts=1, budget=bucket)
    done: list[Lookup] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        for i in range(4):
            engine.submit(search_candidates(f"s{i}", SEARCH, 5), "A", [server.address], done.append)
        await wait_for(done, 4)
    finally:
        await engine.close()
    elapsed = loop.time() - t0
    assert all(d.status == "answer" for d in done)
    assert elapsed >= 3 * 0.05 - 0.01  # four tokens at 20/s cannot all be had sooner
    assert bucket.waits >= 3
    # ...and the waits are not DNS latency: each lookup's duration is its round trip only.
    assert sum(d.duration for d in done) < elapsed


class CountingBucket(TokenBucket):
    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate, burst)
        self.reserved = 0

    def reserve(self) -> float:
        self.reserved += 1
        return super().reserve()


async def test_budget_applies_to_every_query_of_a_walk(server: DnsServer) -> None:
    bucket = CountingBucket(1000.0, 1000)
    engine = DnsEngine(timeout=1.0, attempts=1, budget=bucket)
    try:
        lookup = await engine.lookup(search_candidates("nope", SEARCH, 5), "A", [server.address])
        truncated = await engine.lookup(["big.shop.svc.cluster.local."], "A", [server.address])
    finally:
        await engine.close()
    assert (lookup.queries, truncated.queries) == (4, 2)
    assert engine.queries_sent == bucket.reserved == 6  # retries, walk steps and TCP included


class _Busy:
    """A socket whose first send finds the buffer full (EAGAIN), then behaves."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.refusals = 1

    def send(self, data: bytes) -> int:
        if self.refusals:
            self.refusals -= 1
            raise BlockingIOError(errno.EAGAIN, "full")
        return self._sock.send(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


async def test_a_full_send_buffer_queues_the_datagram(server: DnsServer) -> None:
    engine = DnsEngine(timeout=1.0, attempts=1, sockets=1)
    try:
        assert (await engine.lookup(["web.shop.svc.cluster.local."], "A", [server.address])).status == "answer"
        conn = engine._pools[server.address].conns[0]
        busy = _Busy(conn.sock)
        conn.sock = busy  # type: ignore[assignment]
        lookups = await asyncio.gather(*(engine.lookup([f"s{i}.shop.svc.cluster.local."], "A", [server.address])
                                         for i in range(5)))
    finally:
        await engine.close()
    assert busy.refusals == 0
    assert [lk.records for lk in lookups] == [(f"198.18.0.{i + 1}",) for i in range(5)]


async def test_recycled_sockets_finish_their_queries_in_flight(server: DnsServer) -> None:
    engine = DnsEngine(timeout=1.0, attempts=1, sockets=2, recycle_after=3)
    names = [f"s{i}.shop.svc.cluster.local." for i in range(60)]
    try:
        lookups = await asyncio.gather(*(engine.lookup([n], "A", [server.address]) for n in names))
    finally:
        await engine.close()
    assert [lk.records for lk in lookups] == [(f"198.18.0.{i + 1}",) for i in range(60)]
    assert len(server.udp_sources) >= 60 // 3
    assert not engine._conns


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        DnsEngine(timeout=1.0, attempts=1, recycle_after=100_000)
    with pytest.raises(ValueError):
        DnsEngine(timeout=0, attempts=1)


async def test_unknown_query_type_is_refused_before_anything_is_sent(server: DnsServer, engine: DnsEngine) -> None:
    with pytest.raises(ValueError, match="unsupported query type"):
        engine.submit(["web.shop.svc.cluster.local."], "MX", [server.address], lambda _: None)
    assert server.queries == [] and engine.queries_sent == 0
