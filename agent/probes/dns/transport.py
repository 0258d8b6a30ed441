"""The DNS engine's transport: emulated stub-resolver lookups, driven by socket callbacks.

The walk itself (search list, retries, TCP fallback, what each rcode means) is decided by
`agent.probes.dns.resolution`, which does no I/O; this module is the machinery around it:

- **Timing.** Each query is timed from just before its datagram is sent to the moment its reply
  is read from the socket (`perf_counter_ns`); a lookup's `duration` is the sum of its queries,
  so waits for the query budget are not counted as DNS latency. A timeout counts as exactly
  `timeout`; a reply read later than that is a timeout too, however late the sweeper runs.
- **Budget.** Every query (retries and TCP included) first takes a token from the agent's
  `TokenBucket`: `reserve()` says how long to wait, and the send is then scheduled with
  `call_later` instead of sleeping.
- **Matching.** A reply is accepted only if its id and its question (case-insensitively) are
  those of a query in flight on that socket and it comes from that query's server. Sockets are
  *connected* to one server, so the kernel itself drops datagrams from any other source (they
  never reach the engine, and cannot be counted here); replies with an unknown id or another
  question are ignored and counted in `replies_ignored`, as stub resolvers ignore them.
- **Connected sockets and ICMP.** Because each socket is connected, an ICMP port-unreachable
  from the server surfaces as ECONNREFUSED. Every query in flight on that socket (they all went
  to that server) then ends as `refused` ("connection refused ... ICMP port unreachable"): the
  lookup ends there, as glibc aborts on ECONNREFUSED (k8s-dns.md §3.2), and the socket is
  replaced. This is what a DNS prober wants: "nothing listening on :53", or kube-proxy's
  REJECT for a DNS Service without endpoints, is told apart from silent loss (`timeout`). musl
  and dnspython use unconnected sockets and would wait for the timeout instead (§3.3, §3.5).
  ICMP host/network-unreachable errors end the queries in flight on that socket as `error`
  (retried like a timeout).
- **Fresh 5-tuples.** Each socket is replaced after `recycle_after` queries (and after an ICMP
  error), so queries to a Service IP keep taking new conntrack 5-tuples: a pinned 5-tuple
  always reaches the same CoreDNS replica through kube-proxy. `sockets` is the pool size *per
  nameserver*.
- **Trace** mode records every query (name, server, transport, rcode, records, time and the
  decoded reply) for the debug view. **Malformed** replies to our question end the query as
  `error`, with dnspython's opinion of the bytes in the detail. IPv6 servers work alike.

API:

    lookup = engine.submit(candidates, qtype, servers, on_done, trace=False)  # -> Lookup handle
    # on_done(lookup) is called once from the event loop when the walk ends
    # (never from inside submit() itself); engine.cancel(lookup) abandons it.
    lookup = await engine.lookup(candidates, qtype, servers, trace=False)    # one future

How it is fast: there is no coroutine, future or timer per query. `submit()` sends the first
query; the socket's reader callback (`loop.add_reader`) reads every datagram waiting on the
socket (up to `_DRAIN` per wake-up), matches it and drives the walk on from there (next
candidate, retry, TCP fallback or `on_done`); one shared sweeper expires lost queries. Query
messages are built once per (name, type) and only their id is patched; replies are read by
`wire.parse_answer` from just past the question that was matched byte for byte.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence

from agent.probes.budget import TokenBucket
from agent.probes.dns import trace as tracing, wire
from agent.probes.dns.resolution import (
    ANSWER,
    ASK_NEXT_NAME,
    ERROR,
    FINISHED,
    NODATA,
    Resolution,
    Server,
    os_error_outcome,
    server_label,
)
from agent.resolvers import Walk

log = logging.getLogger(__name__)

OnDone = Callable[["Lookup"], None]
_QUERY_CACHE_MAX = 50_000  # query templates per query type (A, AAAA, CNAME, PTR, SRV): 250,000 in all
_DRAIN = 64  # most datagrams read per wake-up, so one busy socket cannot hold the loop
_MAX_PENDING = 16384  # queries in flight on one socket before a fresh one takes over (16-bit ids)
_RECV_SIZE = 65535  # a whole UDP datagram, whatever the server sends
_SWEEP_SLACK = 0.001  # the sweeper wakes this long after the earliest deadline

_perf_ns = time.perf_counter_ns
# Message ids come from a generator of the engine's own (seeded from the OS), so nothing
# else in the process can predict or disturb them through the shared `random` state.
_getrandbits = random.Random(int.from_bytes(os.urandom(16), "big")).getrandbits
_TYPE_CODES = wire.TYPE_CODES
_parse = wire.parse_answer
_WireError = wire.WireError
_TC = wire.FLAG_TC


_walk_init = Resolution.__init__


class Lookup(Resolution):
    """One emulated lookup. While it runs it is the handle `submit()` returned; once finished
    it holds what the lookup saw (see `Resolution`); `status` is the DNS outcome, not yet
    compared with any expectation."""

    __slots__ = ("_code", "_on_done", "_tpl", "_conn", "_qid", "_sent_ns", "_timer", "_task")

    def __init__(self, candidates: Sequence[str] | Walk, qtype: str, code: int, servers: Sequence[Server],
                 attempts: int, on_done: OnDone | None, trace: bool) -> None:
        _walk_init(self, candidates, qtype, servers, attempts, trace)  # (cheaper than super() per lookup)
        self._code = code
        self._on_done = on_done
        self._tpl: tuple[bytes, bytes, bytes, int] = (b"", b"", b"", 0)
        self._conn: _Conn | None = None
        self._qid = -1
        self._sent_ns = 0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = self.status if self.finished else "running"
        return (f"Lookup({state}, records={tuple(self.records)!r}, queries={self.queries}, "
                f"duration={self.duration:.6f}, server={self.server!r}, qname={self.qname!r}, "
                f"detail={self.detail!r})")


class _Pool:
    """The sockets to one nameserver."""

    __slots__ = ("server", "label", "size", "family", "sockaddr", "conns", "next")

    def __init__(self, server: Server, size: int) -> None:
        host, port = server
        self.server = server
        self.label = server_label(server)
        self.size = size
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Numeric only: a nameserver is an address, never a name to resolve (no blocking here).
        self.sockaddr = socket.getaddrinfo(host, port, self.family, socket.SOCK_DGRAM, 0,
                                           socket.AI_NUMERICHOST)[0][4]
        self.conns: list[_Conn | None] = [None] * size  # None: not opened yet
        self.next = 0


class _Conn:
    """One connected, non-blocking UDP socket, read by the event loop's selector."""

    __slots__ = ("pool", "sock", "fd", "pending", "quota", "retired", "closed", "out")

    def __init__(self, pool: _Pool, sock: socket.socket, quota: int) -> None:
        self.pool = pool
        self.sock = sock
        self.fd = sock.fileno()
        self.pending: dict[int, Lookup] = {}  # id -> the lookup whose query is in flight
        self.quota = quota  # queries it may still send; 0: replace it at the next use
        self.retired = False  # replaced in its pool; closed once nothing is in flight on it
        self.closed = False
        self.out: collections.deque[tuple[bytes, Lookup, int]] = collections.deque()  # EAGAIN backlog


def _question_matches(reply: bytes, question: bytes) -> bool:
    try:
        return wire.question_bytes(reply) == question
    except _WireError:
        return False


def _resolve(fut: asyncio.Future[Lookup], lookup: Lookup) -> None:
    if not fut.done():
        fut.set_result(lookup)


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
        if timeout <= 0 or attempts < 1 or sockets < 1 or not 1 <= recycle_after <= 32768:
            # (at most half the id space in flight on a socket: a free id is found at once)
            raise ValueError("timeout must be > 0, attempts and sockets >= 1, recycle_after in 1..32768")
        self.timeout = timeout
        self.attempts = attempts
        self.pool_size = sockets  # per nameserver
        self.budget = budget
        self.recycle_after = recycle_after
        self.queries_sent = 0
        self.replies_ignored = 0  # unknown id or another question (late, spoofed, mangled)
        self._timeout_ns = round(timeout * 1e9)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[Server, _Pool] = {}
        self._conns: set[_Conn] = set()  # every open socket, retired ones included
        self._waiting: set[Lookup] = set()  # waiting for a budget token
        self._in_tcp: set[Lookup] = set()
        self._templates: dict[int, dict[str, tuple[bytes, bytes, bytes, int]]] = {
            code: {} for code in _TYPE_CODES.values()}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweeping = False
        self._closing = False

    # -- the public API --------------------------------------------------------------------
    def submit(self, candidates: Sequence[str] | Walk, qtype: str, servers: Sequence[Server], on_done: OnDone,
               *, trace: bool = False) -> Lookup:
        """Start a lookup; `on_done(lookup)` is called once, from the event loop, when it ends.

        `candidates`: the names to walk (NXDOMAIN moves to the next), or a `resolvers.Walk`
        (the lookup then records what each name got in `steps`).

        Never calls `on_done` before returning, so `on_done` may submit the next lookup.
        Returns the lookup (a handle for `cancel`, and the result once `on_done` has it).
        """
        code = _TYPE_CODES.get(qtype)
        if code is None:
            raise ValueError(f"unsupported query type {qtype!r}; known: {', '.join(wire.TYPE_CODES)}")
        loop = self._loop
        # (asyncio.get_running_loop() costs a getpid() system call in 3.11: only when needed.)
        if loop is None or not loop.is_running():
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                self._bind(loop)
        w = Lookup(candidates, qtype, code, servers, self.attempts, on_done, trace)
        if not w._candidates or not servers or self._closing:
            w.detail = ("no candidate names" if not candidates else "no nameservers" if not servers
                        else "DNS engine closed")
            loop.call_soon(self._finish, w)
            return w
        tpl = self._templates[code].get(w.qname)
        if tpl is not None:
            w._tpl = tpl
        elif not self._set_name(w):
            return w
        budget = self.budget
        if budget is not None:
            wait = budget.reserve()
            if wait > 0:
                self._wait(w, wait)
                return w
        self._send(w)
        return w

    async def lookup(self, candidates: Sequence[str] | Walk, qtype: str, servers: Sequence[Server], *,
                     trace: bool = False) -> Lookup:
        """`submit` for callers that await: one future per lookup."""
        fut: asyncio.Future[Lookup] = asyncio.get_running_loop().create_future()
        w = self.submit(candidates, qtype, servers, functools.partial(_resolve, fut), trace=trace)
        try:
            return await fut
        except asyncio.CancelledError:
            self.cancel(w)
            raise

    def cancel(self, w: Lookup) -> None:
        """Abandon a running lookup: nothing more is sent for it and `on_done` is not called."""
        if w._on_done is None:
            return
        w._on_done = None
        if w._timer is not None:
            w._timer.cancel()
            w._timer = None
        self._waiting.discard(w)
        self._in_tcp.discard(w)
        if w._task is not None:
            w._task.cancel()
            w._task = None
        self._take(w)

    def retain_servers(self, servers: set[Server]) -> int:
        """Let go of the socket pools of servers not in `servers` (CoreDNS pods come and go,
        and a departed pod's address may drop queries silently): idle sockets close now,
        busy ones as soon as their queries are answered or time out. Returns how many pools
        were dropped."""
        gone = [s for s in self._pools if s not in servers]
        for server in gone:
            pool = self._pools.pop(server)
            for conn in pool.conns:
                if conn is None:
                    continue
                conn.retired = True
                if not conn.pending:
                    self._close_conn(conn)
        return len(gone)

    def renew_sockets(self) -> None:
        """Give every server's sockets a fresh source port at their next use. Called at each
        sweep: a pod's resolver opens a new socket per lookup, so its queries start new
        conntrack flows and follow the Service proxy's current rules; a socket kept for long
        would stay on the flow it started (kube-proxy does not always delete UDP flows when a
        Service's endpoints change) and see a Service IP that applications no longer reach."""
        for pool in self._pools.values():
            for conn in pool.conns:
                if conn is not None:
                    conn.quota = 0

    async def close(self) -> None:
        """Close every socket; lookups still running end as `error` ("DNS engine closed").

        The engine stays usable: a later `submit` opens new sockets.
        """
        self._closing = True
        try:
            if self._sweeper is not None:
                self._sweeper.cancel()
                self._sweeper = None
            running: list[Lookup] = []
            for conn in list(self._conns):
                running.extend(conn.pending.values())
                conn.pending.clear()
                self._close_conn(conn)
            running.extend(self._waiting)
            running.extend(self._in_tcp)
            self._waiting.clear()
            self._in_tcp.clear()
            tasks = []
            for w in running:
                if w._timer is not None:
                    w._timer.cancel()
                    w._timer = None
                if w._task is not None:
                    w._task.cancel()
                    tasks.append(w._task)
                    w._task = None
            self._pools.clear()
            for w in running:
                if w._on_done is not None:
                    w.status, w.records, w.detail = ERROR, (), "DNS engine closed"
                    self._finish(w)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)
        finally:
            self._closing = False

    # -- sockets ---------------------------------------------------------------------------
    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or use from another event loop: start from a clean slate."""
        old = self._loop
        for conn in list(self._conns):
            conn.closed = True
            if old is not None and not old.is_closed():
                old.remove_reader(conn.fd)
                if conn.out:
                    old.remove_writer(conn.fd)
            conn.sock.close()
        self._conns.clear()
        self._pools.clear()
        self._waiting.clear()
        self._in_tcp.clear()
        self._sweeper = None
        self._loop = loop

    def _open(self, pool: _Pool) -> _Conn:
        sock = socket.socket(pool.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(pool.sockaddr)  # UDP: no packet, just the peer (and a source port)
            conn = _Conn(pool, sock, self.recycle_after)
            assert self._loop is not None
            self._loop.add_reader(conn.fd, self._readable, conn)
        except BaseException:
            sock.close()
            raise
        self._conns.add(conn)
        return conn

    def _close_conn(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(conn.fd)
            if conn.out:
                loop.remove_writer(conn.fd)
                conn.out.clear()
        conn.sock.close()

    def _fresh(self, pool: _Pool, i: int) -> _Conn:
        old = pool.conns[i]
        conn = self._open(pool)
        pool.conns[i] = conn
        if old is not None:
            old.retired = True
            if not old.pending:
                self._close_conn(old)
        return conn

    # -- sending ---------------------------------------------------------------------------
    def _set_name(self, w: Lookup) -> bool:
        """The walk is at a new candidate: take that name's query template. A name that
        cannot be put into a query is skipped; False when none is left (the lookup then
        ends as an error, from the loop)."""
        while True:
            tpl = self._templates[w._code].get(w.qname)
            if tpl is not None:
                w._tpl = tpl
                return True
            try:
                w._tpl = self._template(w.qname, w._code)
                return True
            except _WireError as exc:
                if w.unaskable(str(exc)) == FINISHED:
                    assert self._loop is not None
                    self._loop.call_soon(self._finish, w)
                    return False

    def _template(self, qname: str, code: int) -> tuple[bytes, bytes, bytes, int]:
        """(message after the id, question as sent, question lower-cased, end of the question)."""
        data = wire.query_message(qname, code)
        question = data[12 : wire.skip_name(data, 12) + 4]
        lower = question.lower()
        tpl = (data[2:], question, question if lower == question else lower, 12 + len(question))
        cache = self._templates[code]
        if len(cache) >= _QUERY_CACHE_MAX:
            cache.clear()
        cache[qname] = tpl
        return tpl

    def _wait(self, w: Lookup, wait: float) -> None:
        assert self._loop is not None
        self._waiting.add(w)
        w._timer = self._loop.call_later(wait, self._waited, w)

    def _waited(self, w: Lookup) -> None:
        w._timer = None
        self._waiting.discard(w)
        if w._on_done is None:
            return
        self._ask(w)

    def _next_query(self, w: Lookup) -> None:
        """The next query of a running walk: take a budget token, then send."""
        if self._closing:
            w.status, w.records, w.detail = ERROR, (), "DNS engine closed"
            self._finish(w)
            return
        budget = self.budget
        if budget is not None:
            wait = budget.reserve()
            if wait > 0:
                self._wait(w, wait)
                return
        self._ask(w)

    def _ask(self, w: Lookup) -> None:
        """Send the walk's current query, over TCP when the last UDP reply was truncated."""
        if w.tcp:
            self._start_tcp(w)
        else:
            self._send(w)

    def _send(self, w: Lookup) -> None:
        pool = self._pools.get(w._servers[w._si])
        if pool is None:
            pool = self._pool(w)
            if pool is None:
                return
        i = pool.next
        pool.next = i + 1 if i + 1 < pool.size else 0
        conn = pool.conns[i]
        if conn is None or conn.quota <= 0:  # not opened yet, used up or broken: a fresh socket (new source port)
            try:
                conn = self._fresh(pool, i)
            except OSError as exc:  # no socket (EMFILE, no route for the family, ...)
                self._cannot_send(w, exc)
                return
        pending = conn.pending
        qid = _getrandbits(16)
        while qid in pending:
            qid = _getrandbits(16)
        pending[qid] = w
        w._conn = conn
        w._qid = qid
        w.server = pool.label
        conn.quota -= 1
        w.queries += 1
        self.queries_sent += 1
        data = qid.to_bytes(2, "big") + w._tpl[0]
        w._sent_ns = now = _perf_ns()
        if self._sweeper is None and not self._sweeping:
            self._arm(now + self._timeout_ns)
        if conn.out:
            conn.out.append((data, w, qid))
            return
        try:
            conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            conn.out.append((data, w, qid))
            assert self._loop is not None
            self._loop.add_writer(conn.fd, self._writable, conn)
        except OSError as exc:
            # Reported later, from the loop: on_done must never run inside submit().
            assert self._loop is not None
            self._loop.call_soon(self._send_failed, conn, w, qid, exc)

    def _pool(self, w: Lookup) -> _Pool | None:
        server = w._servers[w._si]
        try:
            pool = self._pools[server] = _Pool(server, self.pool_size)
        except (OSError, ValueError, TypeError) as exc:  # not a numeric address
            self._cannot_send(w, exc)
            return None
        return pool

    def _cannot_send(self, w: Lookup, exc: BaseException) -> None:
        w.server = server_label(w._servers[w._si])
        w.queries += 1
        self.queries_sent += 1
        assert self._loop is not None
        self._loop.call_soon(self._failed, w, exc, "udp", 0)

    def _writable(self, conn: _Conn) -> None:
        out = conn.out
        while out:
            data, w, qid = out[0]
            if conn.pending.get(qid) is not w:  # timed out or cancelled while queued
                out.popleft()
                continue
            w._sent_ns = _perf_ns()
            try:
                conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                out.popleft()
                self._send_failed(conn, w, qid, exc)
                if conn.closed:
                    return
                continue
            out.popleft()
        if self._loop is not None and not conn.closed:
            self._loop.remove_writer(conn.fd)

    def _send_failed(self, conn: _Conn, w: Lookup, qid: int, exc: OSError) -> None:
        if isinstance(exc, ConnectionRefusedError):
            # A latched ICMP port-unreachable for this socket's server: every query on it.
            self._conn_failed(conn, exc)
            return
        if conn.pending.get(qid) is w:
            del conn.pending[qid]
            if conn.retired and not conn.pending:
                self._close_conn(conn)
            self._failed(w, exc, "udp", _perf_ns() - w._sent_ns)

    # -- receiving -------------------------------------------------------------------------
    def _readable(self, conn: _Conn) -> None:
        recv = conn.sock.recv
        pending = conn.pending
        timeout_ns = self._timeout_ns
        for _ in range(_DRAIN):
            if conn.closed:
                return
            try:
                data = recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # an ICMP error for this socket's server
                self._conn_failed(conn, exc)
                return
            now = _perf_ns()
            if len(data) < 12:
                self.replies_ignored += 1
                continue
            qid = (data[0] << 8) | data[1]
            w = pending.get(qid)
            if w is None:
                self.replies_ignored += 1
                continue
            tpl = w._tpl
            if not data.startswith(tpl[1], 12) and not _question_matches(data, tpl[2]):
                self.replies_ignored += 1  # a late, spoofed or mangled reply: ignored, as stub resolvers do
                continue
            del pending[qid]
            rtt = now - w._sent_ns
            if rtt > timeout_ns:  # later than the timeout: it is one, whenever the sweeper runs
                self._timed_out(w, "udp")
                continue
            parsed = None
            if w.trace is None and w.walk is None:
                # The common case inline (one call less per lookup): an absolute name, NOERROR,
                # not truncated. (A walk records each name's outcome: `_reply` does that.)
                try:
                    parsed = rcode, flags, records = _parse(data, w._code, tpl[3])
                except _WireError:
                    rcode = flags = -1
                if rcode == 0 and not flags & _TC:
                    on_done = w._on_done
                    if on_done is None:
                        continue
                    w._elapsed_ns += rtt
                    w.records = tuple(records)
                    w.status = ANSWER if records else NODATA
                    w.detail = ""
                    w._on_done = None
                    w._conn = None
                    w.finished = True
                    w.duration = w._elapsed_ns / 1e9
                    try:
                        on_done(w)
                    except Exception:  # a caller's bug must not break the socket callbacks
                        log.exception("on_done of a DNS lookup failed")
                    continue
            self._reply(w, data, rtt, "udp", parsed)
        if conn.retired and not conn.pending:
            self._close_conn(conn)

    def _reply(self, w: Lookup, data: bytes, rtt_ns: int, transport: str,
               parsed: tuple[int, int, list[str]] | None = None) -> None:
        w._elapsed_ns += rtt_ns
        server = w._servers[w._si]
        try:
            rcode, flags, records = parsed if parsed is not None else _parse(data, w._code, w._tpl[3])
        except _WireError as exc:
            if w.trace is not None:
                tracing.record(w.trace, w.qname, w._qtype, server, transport, "MALFORMED", [], rtt_ns / 1e9)
            self._step(w, w.malformed(f"{exc}{tracing.dnspython_opinion(data)}"))
            return
        if w.trace is not None:
            tracing.record(w.trace, w.qname, w._qtype, server, transport,
                           wire.RCODE_NAMES.get(rcode, f"RCODE{rcode}"), records, rtt_ns / 1e9, reply=data)
        self._step(w, w.reply(rcode, flags, records, transport))

    def _conn_failed(self, conn: _Conn, exc: OSError) -> None:
        """An ICMP error on a connected socket: it is about the server, so about every query
        in flight on the socket; they end with it and the socket is replaced."""
        conn.quota = 0
        walks = list(conn.pending.values())
        conn.pending.clear()
        self._close_conn(conn)
        now = _perf_ns()
        for w in walks:
            self._failed(w, exc, "udp", now - w._sent_ns)

    def _failed(self, w: Lookup, exc: BaseException, transport: str, rtt_ns: int) -> None:
        if w._on_done is None:
            return
        w._elapsed_ns += rtt_ns
        server = w._servers[w._si]
        status, detail = os_error_outcome(exc, server, transport)
        if w.trace is not None:
            tracing.record(w.trace, w.qname, w._qtype, server, transport, status.upper(), [], rtt_ns / 1e9)
        self._step(w, w.advance(status, detail))

    # -- timeouts: one sweeper, no timer per query -----------------------------------------
    def _arm(self, deadline_ns: int) -> None:
        assert self._loop is not None
        delay = (deadline_ns - _perf_ns()) / 1e9
        self._sweeper = self._loop.call_later(max(delay, 0.0) + _SWEEP_SLACK, self._sweep)

    def _sweep(self) -> None:
        """Expire the queries whose deadline has passed; wake again at the next deadline."""
        self._sweeper = None
        limit = _perf_ns() - self._timeout_ns
        expired = [w for conn in list(self._conns) for w in conn.pending.values() if w._sent_ns <= limit]
        self._sweeping = True  # sends below must not arm: the re-arm below takes the earliest
        try:
            for w in expired:
                if self._take(w):
                    self._timed_out(w, "udp")
        finally:
            self._sweeping = False
            earliest = min((w._sent_ns for conn in self._conns for w in conn.pending.values()), default=None)
            # (Nothing armed the sweeper meanwhile: sends do not while `_sweeping` is set.)
            if earliest is not None and self._loop is not None and not self._loop.is_closed():
                self._arm(earliest + self._timeout_ns)

    def _take(self, w: Lookup) -> bool:
        """Remove w's query from its socket; False when it was not in flight there."""
        conn = w._conn
        if conn is None or conn.pending.get(w._qid) is not w:
            return False
        del conn.pending[w._qid]
        if conn.retired and not conn.pending:
            self._close_conn(conn)
        return True

    def _timed_out(self, w: Lookup, transport: str) -> None:
        if w._on_done is None:
            return
        w._elapsed_ns += self._timeout_ns
        if w.trace is not None:
            tracing.record(w.trace, w.qname, w._qtype, w._servers[w._si], transport, "TIMEOUT", [], self.timeout)
        self._step(w, w.timed_out(self.timeout))

    def _step(self, w: Lookup, step: int) -> None:
        """Do what the walk decided after a query's outcome."""
        if w._on_done is None:  # cancelled
            return
        if step == FINISHED:
            self._finish(w)
            return
        if step == ASK_NEXT_NAME and not self._set_name(w):
            return
        self._next_query(w)

    def _finish(self, w: Lookup) -> None:
        on_done = w._on_done
        if on_done is None:
            return
        w._on_done = None
        w._conn = None
        w.finished = True
        w.duration = w._elapsed_ns / 1e9
        if w.records.__class__ is list:
            w.records = tuple(w.records)
        try:
            on_done(w)
        except Exception:  # a caller's bug must not break the socket callbacks
            log.exception("on_done of a DNS lookup failed")

    # -- TCP -------------------------------------------------------------------------------
    def _start_tcp(self, w: Lookup) -> None:
        assert self._loop is not None
        self._in_tcp.add(w)
        w._task = self._loop.create_task(self._tcp(w))

    async def _tcp(self, w: Lookup) -> None:
        w.tcp = False  # this query only; a retry after it goes over UDP again
        server = w._servers[w._si]
        w.server = server_label(server)
        w.queries += 1
        self.queries_sent += 1
        t0 = _perf_ns()
        try:
            reply = await self._tcp_exchange(w._tpl, server)
        except TimeoutError:
            self._tcp_done(w)
            self._timed_out(w, "tcp")
            return
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            self._tcp_done(w)
            self._failed(w, exc, "tcp", _perf_ns() - t0)
            return
        rtt = _perf_ns() - t0
        self._tcp_done(w)
        self._reply(w, reply, rtt, "tcp")

    def _tcp_done(self, w: Lookup) -> None:
        w._task = None
        self._in_tcp.discard(w)

    async def _tcp_exchange(self, tpl: tuple[bytes, bytes, bytes, int], server: Server) -> bytes:
        qid = _getrandbits(16)
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(server[0], server[1])
                payload = struct.pack("!H", qid) + tpl[0]
                writer.write(struct.pack("!H", len(payload)) + payload)
                await writer.drain()
                while True:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    reply = await reader.readexactly(length)
                    if (len(reply) >= 12 and (reply[0] << 8 | reply[1]) == qid
                            and (reply.startswith(tpl[1], 12) or _question_matches(reply, tpl[2]))):
                        return reply
        finally:
            if writer is not None:
                writer.close()
