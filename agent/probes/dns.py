"""The DNS engine: emulated stub-resolver lookups over a small pool of shared UDP sockets.

One lookup walks the candidate names of a search list (see `planner.search_candidates`)
the way musl and dnspython do: NXDOMAIN moves on to the next candidate, anything else ends
the walk. Each candidate is tried `attempts` times over the nameservers in order (as
libc does); a truncated UDP reply is asked again over TCP.

Throughput: queries are multiplexed over a few long-lived sockets by message id instead of
one socket and task per query, query messages are cached, and replies are read by
`wire.parse_answer`. Sockets are replaced after a number of queries so that queries to a
Service IP keep taking fresh conntrack 5-tuples (a pinned 5-tuple always reaches the same
CoreDNS replica through kube-proxy).

Timing: each query is timed from just before `sendto` to the moment its datagram is
read by the protocol, with `perf_counter_ns`; a lookup's duration is the sum of its
queries, so waits for the query budget are not counted as DNS latency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import random
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.message
import dns.name

from agent.probes import wire
from agent.ratelimit import TokenBucket

Server = tuple[str, int]
_QUERY_CACHE_MAX = 200_000


@dataclasses.dataclass(slots=True)
class Lookup:
    """What one emulated lookup saw. `status` is the DNS outcome, not yet compared."""

    status: str  # answer, nodata, nxdomain, servfail, refused, timeout, error
    records: tuple[str, ...]
    queries: int
    duration: float  # seconds, sum of the queries' round trips
    server: str  # the server that answered last (or was last tried)
    qname: str  # the candidate that ended the walk
    detail: str = ""
    trace: list[dict[str, Any]] | None = None


def server_label(server: Server) -> str:
    host, port = server
    if port == 53:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Pending:
    __slots__ = ("future", "server", "question", "sent_ns")

    def __init__(self, future: asyncio.Future[tuple[bytes, int]], server: Server, question: bytes) -> None:
        self.future = future
        self.server = server
        self.question = question
        self.sent_ns = 0


class _SharedSocket(asyncio.DatagramProtocol):
    """One unconnected UDP socket carrying many queries at once, matched by id and question."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Pending] = {}
        self.sent = 0
        self.ignored = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.perf_counter_ns()
        if len(data) < 12:
            self.ignored += 1
            return
        p = self.pending.get((data[0] << 8) | data[1])
        if p is None or p.future.done():
            self.ignored += 1
            return
        if _same_server(addr, p.server) and _question_matches(data, p.question):
            p.future.set_result((data, now))
        else:  # a late, spoofed or mangled reply: ignore it, as stub resolvers do
            self.ignored += 1

    def error_received(self, exc: Exception) -> None:
        # Unconnected sockets rarely see ICMP errors; fail whatever is waiting on this socket.
        for p in list(self.pending.values()):
            if not p.future.done():
                p.future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for p in list(self.pending.values()):
            if not p.future.done():
                p.future.set_exception(exc or ConnectionError("socket closed"))

    def new_id(self) -> int:
        while True:
            qid = random.getrandbits(16)
            if qid not in self.pending:
                return qid


def _same_server(addr: Any, server: Server) -> bool:
    if addr[1] != server[1]:
        return False
    if addr[0] == server[0]:
        return True
    try:
        return ipaddress.ip_address(addr[0].split("%")[0]) == ipaddress.ip_address(server[0])
    except ValueError:
        return False


def _question_matches(reply: bytes, question: bytes) -> bool:
    try:
        return wire.question_bytes(reply) == question
    except wire.WireError:
        return False


class DnsEngine:
    def __init__(
        self,
        *,
        timeout: float,
        attempts: int,
        sockets: int = 8,
        budget: TokenBucket | None = None,
        recycle_after: int = 2000,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.pool_size = sockets
        self.budget = budget
        self.recycle_after = recycle_after
        self._pools: dict[int, list[_SharedSocket]] = {}
        self._next: dict[int, int] = {}
        self._retired: list[_SharedSocket] = []
        self._queries: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        self._lock = asyncio.Lock()
        self.queries_sent = 0
        self.closed = False

    # -- sockets ---------------------------------------------------------------------------
    async def _open(self, family: int) -> _SharedSocket:
        loop = asyncio.get_running_loop()
        local = ("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0)
        _, proto = await loop.create_datagram_endpoint(_SharedSocket, local_addr=local, family=family)
        return proto

    async def _socket_for(self, server: Server) -> _SharedSocket:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        pool = self._pools.get(family)
        if pool is None:
            async with self._lock:
                pool = self._pools.get(family)
                if pool is None:
                    pool = [await self._open(family) for _ in range(self.pool_size)]
                    self._pools[family] = pool
                    self._next[family] = 0
        i = self._next[family]
        self._next[family] = (i + 1) % len(pool)
        sock = pool[i]
        if sock.closed or sock.sent >= self.recycle_after:
            fresh = await self._open(family)
            pool[i] = fresh
            self._retire(sock)
            sock = fresh
        return sock

    def _retire(self, sock: _SharedSocket) -> None:
        if sock.pending:
            self._retired.append(sock)  # closed once its last query is answered or timed out
        elif sock.transport is not None:
            sock.transport.close()

    async def close(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            for sock in pool:
                if sock.transport is not None:
                    sock.transport.close()
        for sock in self._retired:
            if sock.transport is not None:
                sock.transport.close()
        self._pools.clear()
        self._retired.clear()
        await asyncio.sleep(0)

    # -- messages --------------------------------------------------------------------------
    def _query_template(self, qname: str, qtype: int) -> tuple[bytes, bytes]:
        key = (qname, qtype)
        cached = self._queries.get(key)
        if cached is None:
            msg = dns.message.make_query(dns.name.from_text(qname), qtype, use_edns=False)
            msg.id = 0
            data = msg.to_wire()
            cached = (data, wire.question_bytes(data))
            if len(self._queries) >= _QUERY_CACHE_MAX:
                self._queries.clear()
            self._queries[key] = cached
        return cached

    async def _udp(self, data: bytes, question: bytes, server: Server) -> tuple[bytes, float]:
        sock = await self._socket_for(server)
        qid = sock.new_id()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[bytes, int]] = loop.create_future()
        pending = _Pending(fut, server, question)
        sock.pending[qid] = pending
        sock.sent += 1
        # A bare timer instead of asyncio.wait_for: no extra task or waiter per query.
        timer = loop.call_later(self.timeout, _expire, fut)
        try:
            assert sock.transport is not None
            pending.sent_ns = time.perf_counter_ns()
            sock.transport.sendto(struct.pack("!H", qid) + data[2:], server)
            reply, received_ns = await fut
            return reply, (received_ns - pending.sent_ns) / 1e9
        finally:
            timer.cancel()
            sock.pending.pop(qid, None)
            if sock.closed or sock.sent >= self.recycle_after:
                self._retire_if_idle(sock)

    def _retire_if_idle(self, sock: _SharedSocket) -> None:
        if sock in self._retired and not sock.pending and sock.transport is not None:
            sock.transport.close()
            self._retired.remove(sock)

    async def _tcp(self, data: bytes, question: bytes, server: Server) -> tuple[bytes, float]:
        qid = random.getrandbits(16)
        t0 = time.perf_counter_ns()
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(server[0], server[1])
                payload = struct.pack("!H", qid) + data[2:]
                writer.write(struct.pack("!H", len(payload)) + payload)
                await writer.drain()
                while True:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    reply = await reader.readexactly(length)
                    if len(reply) >= 12 and struct.unpack_from("!H", reply)[0] == qid and _question_matches(reply, question):
                        return reply, (time.perf_counter_ns() - t0) / 1e9
        finally:
            if writer is not None:
                writer.close()

    # -- lookups ---------------------------------------------------------------------------
    async def query(self, qname: str, qtype: str, server: Server, *, trace: list[dict[str, Any]] | None = None,
                    tcp: bool = False) -> tuple[str, list[str], float, int, str]:
        """One question to one server (with TCP fallback on truncation).

        Returns (status, records, seconds, queries sent, detail).
        """
        code = wire.TYPE_CODES[qtype]
        data, question = self._query_template(qname, code)
        transport = "tcp" if tcp else "udp"
        elapsed = 0.0
        sent = 0
        while True:
            if self.budget is not None:
                await self.budget.acquire()
            sent += 1
            self.queries_sent += 1
            t_start = time.perf_counter_ns()
            try:
                if transport == "udp":
                    reply, rtt = await self._udp(data, question, server)
                else:
                    reply, rtt = await self._tcp(data, question, server)
            except (asyncio.TimeoutError, TimeoutError):
                rtt = self.timeout
                elapsed += rtt
                _record(trace, qname, qtype, server, transport, "TIMEOUT", [], rtt)
                return "timeout", [], elapsed, sent, f"no reply from {server_label(server)} within {self.timeout:g}s"
            except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
                rtt = (time.perf_counter_ns() - t_start) / 1e9
                elapsed += rtt
                status, detail = _os_error_status(exc, server, transport)
                _record(trace, qname, qtype, server, transport, status.upper(), [], rtt)
                return status, [], elapsed, sent, detail
            elapsed += rtt
            try:
                rcode, flags, records = wire.parse_answer(reply, code)
            except wire.WireError as exc:
                _record(trace, qname, qtype, server, transport, "MALFORMED", [], rtt)
                return "error", [], elapsed, sent, f"malformed reply from {server_label(server)}: {exc}{_dnspython_opinion(reply)}"
            rcode_name = wire.RCODE_NAMES.get(rcode, f"RCODE{rcode}")
            _record(trace, qname, qtype, server, transport, rcode_name, records, rtt, reply=reply if trace is not None else None)
            if flags & wire.FLAG_TC and transport == "udp":
                transport = "tcp"  # truncated: ask again over TCP, as resolvers do
                continue
            if rcode == 0:
                return ("answer" if records else "nodata"), records, elapsed, sent, ""
            if rcode == 3:
                return "nxdomain", [], elapsed, sent, ""
            if rcode == 2:
                return "servfail", [], elapsed, sent, f"SERVFAIL from {server_label(server)}"
            if rcode == 5:
                return "refused", [], elapsed, sent, f"REFUSED by {server_label(server)}"
            return "error", [], elapsed, sent, f"{rcode_name} from {server_label(server)}"

    async def lookup(self, candidates: Sequence[str], qtype: str, servers: Sequence[Server], *,
                     trace: bool = False) -> Lookup:
        steps: list[dict[str, Any]] | None = [] if trace else None
        total_time = 0.0
        total_queries = 0
        status, records, detail, last_server, qname = "error", [], "no candidate names", "", ""
        for qname in candidates:
            for attempt in range(self.attempts):
                for server in servers:
                    last_server = server_label(server)
                    status, records, secs, sent, detail = await self.query(qname, qtype, server, trace=steps)
                    total_time += secs
                    total_queries += sent
                    if status not in ("timeout", "error"):
                        break  # an answer (of any rcode) ends the retries for this name
                else:
                    continue
                break
            if status != "nxdomain":
                break
        return Lookup(status, tuple(records), total_queries, total_time, last_server, qname, detail, steps)


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def _os_error_status(exc: BaseException, server: Server, transport: str) -> tuple[str, str]:
    where = f"{server_label(server)} ({transport})"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", f"connection refused by {where}"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return "error", f"{where} unreachable: {exc.strerror}"
    return "error", f"{where}: {exc.__class__.__name__}: {exc}"


def _dnspython_opinion(reply: bytes) -> str:
    try:
        dns.message.from_wire(reply)
    except dns.exception.DNSException as exc:
        return f" ({exc.__class__.__name__}: {exc})"
    except Exception as exc:  # noqa: BLE001 - a second opinion must never raise
        return f" ({exc.__class__.__name__})"
    return ""


def _record(trace: list[dict[str, Any]] | None, qname: str, qtype: str, server: Server, transport: str,
            rcode: str, records: list[str], rtt: float, *, reply: bytes | None = None) -> None:
    if trace is None:
        return
    entry: dict[str, Any] = {
        "qname": qname,
        "qtype": qtype,
        "server": server_label(server),
        "transport": transport,
        "rcode": rcode,
        "records": list(records),
        "duration_seconds": round(rtt, 6),
    }
    if reply is not None:
        try:
            entry["reply"] = dns.message.from_wire(reply).to_text()
        except Exception as exc:  # noqa: BLE001 - the trace shows what it can
            entry["reply"] = f"<undecodable: {exc}>"
    trace.append(entry)

