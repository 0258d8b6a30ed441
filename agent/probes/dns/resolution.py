"""The stub-resolver walk of one lookup, as decisions only: no sockets, no clock, no loop.

A `Resolution` holds where a lookup is (candidate name, attempt, server, UDP or TCP) and
what it has seen; the transport (`agent.probes.dns.transport`) sends the query it names
and reports what came back (`reply`, `malformed`, `timed_out`, or `advance` with the
outcome of a socket error from `os_error_outcome`), and the resolution answers
what to do next: `FINISHED`, `ASK` (the same name again, to the server it now names, over
TCP when `tcp` is set) or `ASK_NEXT_NAME` (the next candidate). The rules:

- **Search walk.** Given a `resolvers.Walk`, each candidate's outcome is recorded in `steps`
  and the walk asks the next name any configured C library would ask (glibc goes on past
  NODATA and SERVFAIL, musl does not: see `agent.resolvers`); what each library then returns
  is worked out from `steps` afterwards. Given a plain list of names, NXDOMAIN moves on to the
  next one and any other outcome ends the walk.
- **Retries.** Each candidate is tried `attempts` times over the servers in order (as libc
  does): a timeout or an error (a socket error, a malformed reply, an rcode other than
  NOERROR, NXDOMAIN, SERVFAIL and REFUSED) moves to the next server, then to the next
  attempt. SERVFAIL and REFUSED end the lookup where they are.
- **TCP fallback.** A truncated (TC) UDP reply is asked again over TCP, same server.
- **Refused.** ECONNREFUSED (ICMP port unreachable on a connected socket) ends the lookup as
  `refused`, as glibc aborts on it; host/network unreachable is an `error` and retried.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Sequence
from typing import Any

from agent import resolvers
from agent.probes.dns import wire

Server = tuple[str, int]

FINISHED, ASK, ASK_NEXT_NAME = 0, 1, 2  # what the transport does next
_TC = wire.FLAG_TC


class Status(enum.StrEnum):
    """The DNS outcome of a lookup, before it is compared with what the API expects."""

    ANSWER = "answer"  # NOERROR with records of the type asked
    NODATA = "nodata"  # NOERROR without them
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"  # the REFUSED rcode, or ICMP port unreachable
    TIMEOUT = "timeout"
    ERROR = "error"  # any other rcode, a malformed reply, a socket error


ANSWER, NODATA, NXDOMAIN, SERVFAIL, REFUSED, TIMEOUT, ERROR = Status  # for the callbacks' speed


def server_label(server: Server) -> str:
    host, port = server
    if port == 53:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Resolution:
    """Where one lookup's walk is and what it saw. Public fields are its outcome:
    `status`, `records`, `queries`, `duration`, `server`, `qname`, `detail`, `trace`."""

    __slots__ = (
        # the outcome
        "status", "records", "queries", "duration", "server", "qname", "detail", "trace", "finished",
        # the walk
        "_candidates", "_qtype", "_servers", "_attempts", "_ci", "_ai", "_si", "tcp", "_elapsed_ns",
        "walk", "steps", "_positions",
    )

    def __init__(self, candidates: Sequence[str] | resolvers.Walk, qtype: str, servers: Sequence[Server],
                 attempts: int, trace: bool) -> None:
        # What each name of a Walk got (by its index), for the per-library verdicts.
        self.steps: dict[int, resolvers.Step] | None = None
        self._positions: list[int] | None = None
        self.walk: resolvers.Walk | None = None
        start = 0
        if isinstance(candidates, resolvers.Walk):
            self.walk, self.steps, self._positions = candidates, {}, candidates.start()
            start = max(candidates.first(), 0)
            candidates = candidates.candidates
        self.status: Status = ERROR
        self.records: tuple[str, ...] | list[str] = ()
        self.queries = 0
        self.duration = 0.0  # seconds, sum of the queries' round trips
        self.server = ""  # the server that answered last (or was last tried)
        self.qname = candidates[start] if candidates else ""  # the candidate being asked / that ended the walk
        self.detail = ""
        self.trace: list[dict[str, Any]] | None = [] if trace else None
        self.finished = False
        self._candidates = candidates
        self._qtype = qtype
        self._servers = servers
        self._attempts = attempts
        self._ci = start
        self._ai = self._si = 0
        self.tcp = False  # the next query goes over TCP (after a truncated UDP reply)
        self._elapsed_ns = 0

    @property
    def current_server(self) -> Server:
        return self._servers[self._si]

    def advance(self, status: Status, detail: str) -> int:
        """One query ended with `status` (not a plain answer): retry, next name, or finish."""
        self.status = status
        self.detail = detail
        if status is TIMEOUT or status is ERROR:
            self.records = ()
            if self._si + 1 < len(self._servers):
                self._si += 1
                return ASK
            if self._ai + 1 < self._attempts:
                self._ai += 1
                self._si = 0
                return ASK
        elif status is not ANSWER and status is not NODATA:
            self.records = ()
        return self._ended(status)

    def _ended(self, status: str) -> int:
        """The current name is done with `status`: ask the next name, or finish."""
        walk = self.walk
        if walk is None:
            nxt = self._ci + 1 if status is NXDOMAIN and self._ci + 1 < len(self._candidates) else -1
        else:
            assert self.steps is not None and self._positions is not None
            self.steps[self._ci] = resolvers.Step(
                status, tuple(self.records) if status is ANSWER else (), self.detail,
                server_label(self._servers[self._si]) if self._servers else "")
            nxt = walk.step(self._positions, self._ci, status)
        if nxt < 0:
            return FINISHED
        self._ci = nxt
        self.qname = self._candidates[nxt]
        self._ai = self._si = 0
        self.records = ()
        return ASK_NEXT_NAME

    def reply(self, rcode: int, flags: int, records: list[str], transport: str) -> int:
        """A reply to the current query arrived (already matched to it and parsed)."""
        if flags & _TC and transport == "udp":
            self.tcp = True  # truncated: ask again over TCP, as resolvers do
            return ASK
        if rcode == 0:
            self.records = records
            self.status = ANSWER if records else NODATA
            self.detail = ""
            return FINISHED if self.walk is None else self._ended(self.status)
        if rcode == 3:
            return self.advance(NXDOMAIN, "")
        label = server_label(self._servers[self._si])
        if rcode == 2:
            return self.advance(SERVFAIL, f"SERVFAIL from {label}")
        if rcode == 5:
            return self.advance(REFUSED, f"REFUSED by {label}")
        return self.advance(ERROR, f"{wire.RCODE_NAMES.get(rcode, f'RCODE{rcode}')} from {label}")

    def unaskable(self, problem: str) -> int:
        """The current candidate cannot be put into a query (too long, a bad label): skip it,
        as the C libraries skip a search candidate they cannot encode; with none left the
        lookup ends as an error saying why."""
        self.status, self.records = ERROR, ()
        self.detail = f"{self.qname[:80]}{'...' if len(self.qname) > 80 else ''}: {problem}"
        if self.walk is not None:
            return self._ended(resolvers.UNASKABLE)
        if self._ci + 1 < len(self._candidates):
            self._ci += 1
            self.qname = self._candidates[self._ci]
            self._ai = self._si = 0
            return ASK_NEXT_NAME
        return FINISHED

    def malformed(self, problem: str) -> int:
        """The reply to the current query could not be read."""
        return self.advance(ERROR, f"malformed reply from {server_label(self._servers[self._si])}: {problem}")

    def timed_out(self, timeout: float) -> int:
        label = server_label(self._servers[self._si])
        return self.advance(TIMEOUT, f"no reply from {label} within {timeout:g}s")


def os_error_outcome(exc: BaseException, server: Server, transport: str) -> tuple[Status, str]:
    where = f"{server_label(server)} ({transport})"
    if isinstance(exc, ConnectionRefusedError):
        if transport == "udp":
            return REFUSED, (f"connection refused by {where}: ICMP port unreachable "
                             "(nothing listening, or a REJECT rule)")
        return REFUSED, f"connection refused by {where}"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return ERROR, f"{where} unreachable: {exc.strerror}"
    return ERROR, f"{where}: {exc.__class__.__name__}: {exc}"
