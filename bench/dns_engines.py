"""The DNS lookup engines compared by bench/dns_bench.py, behind one interface.

Each engine is an ``async def run(job: Job) -> Counts``: resolve ``job.names[i % len(names)]``
type A for i in 0..job.total-1 against ``job.server``, at most ``job.concurrency`` in flight,
and stop by itself at ``job.deadline`` (a ``time.monotonic()`` value) at the latest.

- ``raw``: the Python ceiling. Pre-built query bytes (only the 2-byte id is patched per query),
  a few connected UDP DatagramProtocol sockets, replies matched by id, nothing parsed beyond
  the id and the rcode nibble. No per-query coroutine, future or timer.
- ``raw_drain``: the raw loop, but each connected socket is read by a ``loop.add_reader``
  callback that reads every datagram waiting (up to 64 per wake-up) instead of asyncio's
  transport, which reads one datagram per wake-up of the event loop. The ceiling for an
  engine doing its I/O that way (svcprobe's does).
- ``raw_await``: the raw loop's sockets and queries, but one coroutine per lookup awaiting a
  future, driven like dnspython: the ceiling for an ``await lookup()`` API.
- ``dnspython``: ``dns.asyncresolver.Resolver.resolve()`` from ``concurrency`` worker tasks
  (what a naive asyncio prober does); cache off, search off, one nameserver.
- ``svcprobe``: the agent's own engine, through ``bench/svcprobe_adapter.py``.

``dnspython`` is driven by a worker loop (:func:`drive`) like ``raw_await``; ``svcprobe``
starts the next lookup from each finished lookup's callback (its sweep API). Both check every
answer against the zone (``job.expected``); the raw loops count NOERROR replies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

import dns.asyncresolver
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver


@dataclasses.dataclass
class Job:
    server: tuple[str, int]
    names: Sequence[str]  # absolute names (trailing dot)
    expected: Sequence[str]  # the one A address expected for names[i]
    total: int
    concurrency: int
    deadline: float  # time.monotonic() value: stop starting lookups then, give up shortly after
    timeout: float = 1.0  # per query


@dataclasses.dataclass
class Counts:
    ok: int = 0  # answered and (where checked) right
    wrong: int = 0  # answered, but not with the expected data / rcode
    failed: int = 0  # timeouts and errors
    detail: str = ""

    @property
    def done(self) -> int:
        return self.ok + self.wrong + self.failed


# --------------------------------------------------------------------------------------------
# raw asyncio UDP loop


class _RawSocket(asyncio.DatagramProtocol):
    """One connected UDP socket with a fixed window of queries in flight."""

    def __init__(self, run: _RawRun, window: int) -> None:
        self.run = run
        self.window = window
        self.transport: asyncio.DatagramTransport | None = None
        self.inflight: dict[int, float] = {}  # id -> send time (monotonic)
        self.next_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_one(self) -> bool:
        run = self.run
        i = run.claim()
        if i < 0:
            return False
        qid = self.next_id
        while qid in self.inflight:
            qid = (qid + 1) & 0xFFFF
        self.next_id = (qid + 1) & 0xFFFF
        self.inflight[qid] = time.monotonic()
        assert self.transport is not None
        self.transport.sendto(qid.to_bytes(2, "big") + run.templates[i % run.n_names])
        return True

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.inflight.pop((data[0] << 8) | data[1], None) is None:
            self.run.stray += 1
            return
        if data[3] & 0x0F == 0:
            self.run.counts.ok += 1
        else:
            self.run.counts.wrong += 1
        self.run.finished_one()
        self.send_one()

    def error_received(self, exc: Exception) -> None:
        self.run.errors.append(repr(exc))

    def expire(self, now: float, timeout: float) -> int:
        old = [qid for qid, sent in self.inflight.items() if now - sent > timeout]
        for qid in old:
            del self.inflight[qid]
        return len(old)


class _RawRun:
    def __init__(self, job: Job, templates: list[bytes]) -> None:
        self.job = job
        self.templates = templates
        self.n_names = len(templates)
        self.issued = 0
        self.counts = Counts()
        self.stray = 0
        self.errors: list[str] = []
        self.finished = asyncio.get_running_loop().create_future()

    def claim(self) -> int:
        if self.issued >= self.job.total or time.monotonic() >= self.job.deadline:
            return -1
        self.issued += 1
        return self.issued - 1

    def finished_one(self) -> None:
        if self.counts.done >= self.issued and (
            self.issued >= self.job.total or time.monotonic() >= self.job.deadline
        ):
            if not self.finished.done():
                self.finished.set_result(None)


async def run_raw(job: Job, sockets: int = 4) -> Counts:
    loop = asyncio.get_running_loop()
    templates = []
    for name in job.names:
        wire = dns.message.make_query(name, "A", use_edns=False).to_wire()
        templates.append(wire[2:])  # everything after the id
    run = _RawRun(job, templates)
    socks: list[_RawSocket] = []
    sockets = max(1, min(sockets, job.concurrency))
    windows = [job.concurrency // sockets + (1 if k < job.concurrency % sockets else 0) for k in range(sockets)]
    try:
        for window in windows:
            _, proto = await loop.create_datagram_endpoint(
                lambda w=window: _RawSocket(run, w), remote_addr=job.server
            )
            socks.append(proto)
        for sock in socks:
            for _ in range(sock.window):
                if not sock.send_one():
                    break
        # Housekeeping: expire lost queries (and refill their slots), end at the deadline.
        while not run.finished.done():
            await asyncio.wait([run.finished], timeout=0.05)
            now = time.monotonic()
            for sock in socks:
                lost = sock.expire(now, job.timeout)
                run.counts.failed += lost
                for _ in range(lost):
                    sock.send_one()
            if now >= job.deadline + job.timeout or (
                run.counts.done >= run.issued and not any(s.inflight for s in socks)
            ):
                break
        run.counts.failed += sum(len(s.inflight) for s in socks)
    finally:
        for sock in socks:
            if sock.transport is not None:
                sock.transport.close()
    notes = []
    if run.stray:
        notes.append(f"{run.stray} stray replies")
    if run.errors:
        notes.append(f"{len(run.errors)} socket errors, first {run.errors[0]}")
    run.counts.detail = "; ".join(notes)
    return run.counts


# --------------------------------------------------------------------------------------------
# raw loop, draining reader


class _DrainSocket:
    """One connected non-blocking UDP socket read by a selector callback that drains it."""

    DRAIN = 64

    def __init__(self, run: _RawRun, window: int, server: tuple[str, int]) -> None:
        self.run = run
        self.window = window
        self.sock = socket.socket(socket.AF_INET6 if ":" in server[0] else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(server)
        self.inflight: dict[int, float] = {}
        self.next_id = 0

    def send_one(self) -> bool:
        run = self.run
        i = run.claim()
        if i < 0:
            return False
        qid = self.next_id
        while qid in self.inflight:
            qid = (qid + 1) & 0xFFFF
        self.next_id = (qid + 1) & 0xFFFF
        self.inflight[qid] = time.monotonic()
        try:
            self.sock.send(qid.to_bytes(2, "big") + run.templates[i % run.n_names])
        except OSError as exc:  # (BlockingIOError included: counted as lost, expired later)
            run.errors.append(repr(exc))
        return True

    def readable(self) -> None:
        recv = self.sock.recv
        for _ in range(self.DRAIN):
            try:
                data = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.run.errors.append(repr(exc))
                return
            if self.inflight.pop((data[0] << 8) | data[1], None) is None:
                self.run.stray += 1
                continue
            if data[3] & 0x0F == 0:
                self.run.counts.ok += 1
            else:
                self.run.counts.wrong += 1
            self.run.finished_one()
            self.send_one()

    def expire(self, now: float, timeout: float) -> int:
        old = [qid for qid, sent in self.inflight.items() if now - sent > timeout]
        for qid in old:
            del self.inflight[qid]
        return len(old)


async def run_raw_drain(job: Job, sockets: int = 4) -> Counts:
    loop = asyncio.get_running_loop()
    templates = [dns.message.make_query(name, "A", use_edns=False).to_wire()[2:] for name in job.names]
    run = _RawRun(job, templates)
    socks: list[_DrainSocket] = []
    sockets = max(1, min(sockets, job.concurrency))
    windows = [job.concurrency // sockets + (1 if k < job.concurrency % sockets else 0) for k in range(sockets)]
    try:
        for window in windows:
            sock = _DrainSocket(run, window, job.server)
            socks.append(sock)
            loop.add_reader(sock.sock.fileno(), sock.readable)
        for sock in socks:
            for _ in range(sock.window):
                if not sock.send_one():
                    break
        while not run.finished.done():  # the same housekeeping as the raw loop
            await asyncio.wait([run.finished], timeout=0.05)
            now = time.monotonic()
            for sock in socks:
                lost = sock.expire(now, job.timeout)
                run.counts.failed += lost
                for _ in range(lost):
                    sock.send_one()
            if now >= job.deadline + job.timeout or (
                run.counts.done >= run.issued and not any(s.inflight for s in socks)
            ):
                break
        run.counts.failed += sum(len(s.inflight) for s in socks)
    finally:
        for sock in socks:
            loop.remove_reader(sock.sock.fileno())
            sock.sock.close()
    notes = []
    if run.stray:
        notes.append(f"{run.stray} stray replies")
    if run.errors:
        notes.append(f"{len(run.errors)} socket errors, first {run.errors[0]}")
    run.counts.detail = "; ".join(notes)
    return run.counts


# --------------------------------------------------------------------------------------------
# a bounded-concurrency driver for engines with a per-lookup coroutine


LookupOne = Callable[[str, str], Awaitable[bool | None]]
"""``await lookup(name, expected_address)``: True = right answer, False = wrong answer,
None = failed (timeout/error)."""


async def drive(job: Job, lookup: LookupOne) -> Counts:
    counts = Counts()
    names, expected, n = job.names, job.expected, len(job.names)
    state = {"next": 0}
    errors: list[str] = []

    async def worker() -> None:
        while True:
            i = state["next"]
            if i >= job.total or time.monotonic() >= job.deadline:
                return
            state["next"] = i + 1
            k = i % n
            try:
                result = await lookup(names[k], expected[k])
            except Exception as exc:  # an engine bug must not hang the benchmark
                result = None
                if len(errors) < 3:
                    errors.append(f"{type(exc).__name__}: {exc}")
            if result is True:
                counts.ok += 1
            elif result is False:
                counts.wrong += 1
            else:
                counts.failed += 1

    workers = [asyncio.create_task(worker()) for _ in range(job.concurrency)]
    # Each lookup ends within its own timeout, so workers end shortly after the deadline; the
    # outer bound is a safety net against an engine that never returns.
    remaining = job.deadline - time.monotonic() + 10 * job.timeout + 5
    _, pending = await asyncio.wait(workers, timeout=max(remaining, 1))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        errors.append(f"{len(pending)} workers did not finish and were cancelled")
    counts.detail = "; ".join(errors)
    return counts


# --------------------------------------------------------------------------------------------
# raw sockets behind an awaitable per lookup


class _AwaitSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.inflight: dict[int, tuple[asyncio.Future[int], float]] = {}
        self.next_id = 0
        self.stray = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        entry = self.inflight.pop((data[0] << 8) | data[1], None)
        if entry is None:
            self.stray += 1
        elif not entry[0].done():
            entry[0].set_result(data[3] & 0x0F)


async def run_raw_await(job: Job, sockets: int = 4) -> Counts:
    """The raw loop's sockets and pre-built queries, but each lookup is a coroutine awaiting a
    future, driven by :func:`drive` like dnspython and svcprobe: the ceiling for any engine
    with an ``await lookup(...)`` API. Lost queries are expired by one sweeper, not per-query
    timers; answers are not parsed."""
    loop = asyncio.get_running_loop()
    templates = {name: dns.message.make_query(name, "A", use_edns=False).to_wire()[2:] for name in job.names}
    socks: list[_AwaitSocket] = []
    for _ in range(max(1, sockets)):
        _, proto = await loop.create_datagram_endpoint(_AwaitSocket, remote_addr=job.server)
        socks.append(proto)
    turn = {"i": 0}

    async def lookup(name: str, want: str) -> bool | None:
        sock = socks[turn["i"]]
        turn["i"] = (turn["i"] + 1) % len(socks)
        qid = sock.next_id
        while qid in sock.inflight:
            qid = (qid + 1) & 0xFFFF
        sock.next_id = (qid + 1) & 0xFFFF
        fut: asyncio.Future[int] = loop.create_future()
        sock.inflight[qid] = (fut, time.monotonic())
        assert sock.transport is not None
        sock.transport.sendto(qid.to_bytes(2, "big") + templates[name])
        try:
            return await fut == 0
        except TimeoutError:
            return None

    async def sweeper() -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for sock in socks:
                old = [q for q, (_, sent) in sock.inflight.items() if now - sent > job.timeout]
                for qid in old:
                    fut, _ = sock.inflight.pop(qid)
                    if not fut.done():
                        fut.set_exception(TimeoutError())

    sweep = asyncio.create_task(sweeper())
    try:
        counts = await drive(job, lookup)
    finally:
        sweep.cancel()
        for sock in socks:
            if sock.transport is not None:
                sock.transport.close()
    stray = sum(s.stray for s in socks)
    if stray:
        counts.detail = "; ".join(filter(None, [counts.detail, f"{stray} stray replies"]))
    return counts


# --------------------------------------------------------------------------------------------
# dnspython's asyncresolver


async def run_dnspython(job: Job) -> Counts:
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers = [dns.nameserver.Do53Nameserver(job.server[0], job.server[1])]
    res.cache = None
    res.timeout = job.timeout
    res.lifetime = job.timeout
    res.retry_servfail = False

    async def lookup(name: str, want: str) -> bool | None:
        try:
            answer = await res.resolve(name, "A", search=False)
        except (dns.resolver.LifetimeTimeout, dns.resolver.NoNameservers):
            return None
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return False
        return len(answer.rrset) == 1 and answer.rrset[0].address == want

    return await drive(job, lookup)
