"""Runs one planned check through the right engine and judges the outcome.

Two ways in: `await run(check)` for any check (the debug view, TCP checks), and
`submit(check, on_result)` for DNS checks, which starts the lookup on the engine's callback
API (no task or coroutine per check) and calls `on_result` with the judged result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from agent import planner
from agent.checks import DNS_CONVERGING, TCP_CONVERGING, CheckResult, DnsCheck, DnsResult, TcpCheck, TcpResult
from agent.probes import answers, tcp
from agent.probes.dns import DnsEngine, Lookup

log = logging.getLogger(__name__)
_CANDIDATES_MAX = 100_000


class Prober:
    def __init__(self, dns_engine: DnsEngine, *, tcp_timeout: float) -> None:
        self.dns = dns_engine
        self.tcp_timeout = tcp_timeout
        # (name, search, ndots) -> the names a pod's resolver tries: the same every sweep.
        self._candidates: dict[tuple[str, tuple[str, ...], int, bool], Sequence[str]] = {}

    async def run(self, check: DnsCheck | TcpCheck, *, trace: bool = False) -> CheckResult:
        if isinstance(check, DnsCheck):
            lookup = await self.dns.lookup(self.candidates(check), check.qtype, check.servers, trace=trace)
            return self.judge(check, lookup)
        return await self._tcp(check)

    def submit(self, check: DnsCheck, on_result: Callable[[CheckResult | None], None]) -> Lookup:
        """Start a DNS check; `on_result(result)` is called from the event loop when it is done
        (never inside `submit`), with None if the result could not be made (a bug, logged).
        Returns the running lookup, for `cancel`."""
        return self.dns.submit(self.candidates(check), check.qtype, check.servers,
                               _Judge(self, check, on_result))

    def cancel(self, lookup: Lookup) -> None:
        """Abandon a check started with `submit`: `on_result` will not be called."""
        self.dns.cancel(lookup)

    def candidates(self, check: DnsCheck) -> Sequence[str]:
        key = (check.name, check.search, check.ndots, check.zone_only)
        names = self._candidates.get(key)
        if names is None:
            if len(self._candidates) >= _CANDIDATES_MAX:
                self._candidates.clear()
            names = self._candidates[key] = tuple(planner.search_candidates(
                check.name, check.search, check.ndots, zone_only=check.zone_only))
        return names

    def judge(self, check: DnsCheck, lookup: Lookup) -> CheckResult:
        result, detail = answers.judge(lookup.status, lookup.records, check.expect, check.qtype)
        if lookup.detail:
            detail = f"{detail}; {lookup.detail}" if detail else lookup.detail
        if result is not DnsResult.OK and lookup.qname:
            detail = f"{detail} (last name tried: {lookup.qname})" if detail else f"last name tried: {lookup.qname}"
        now = time.time()
        converging = result in DNS_CONVERGING and now < check.settle_by
        if converging:
            detail = f"converging (the Service changed recently; grace for {check.settle_by - now:.0f}s more): {detail}"
        return CheckResult(
            check=check,
            result=result,
            duration_seconds=lookup.duration,
            finished_at=now,
            queries=lookup.queries,
            server=lookup.server,
            detail=detail,
            answer=tuple(lookup.records),
            trace=tuple(lookup.trace) if lookup.trace is not None else None,
            converging=converging,
        )

    async def _tcp(self, check: TcpCheck) -> CheckResult:
        if check.no_endpoints:
            return CheckResult(check, TcpResult.NO_ENDPOINTS, 0.0, time.time(),
                               detail="the Service has no ready endpoint; not probed (expected)")
        outcome = await tcp.connect(check.address, check.port, timeout=self.tcp_timeout)
        now = time.time()
        converging = outcome.result in TCP_CONVERGING and now < check.settle_by
        detail = outcome.detail
        if converging:
            detail = f"converging (endpoints changed recently; grace for {check.settle_by - now:.0f}s more): {detail}"
        return CheckResult(check, outcome.result, outcome.duration, now, detail=detail, converging=converging)


class _Judge:
    """The engine's on_done for one submitted check: judge the lookup, hand on the result."""

    __slots__ = ("prober", "check", "on_result")

    def __init__(self, prober: Prober, check: DnsCheck, on_result: Callable[[CheckResult | None], None]) -> None:
        self.prober, self.check, self.on_result = prober, check, on_result

    def __call__(self, lookup: Lookup) -> None:
        try:
            result: CheckResult | None = self.prober.judge(self.check, lookup)
        except Exception:  # a judging bug must not leave the caller waiting
            log.exception("check %s could not be judged", self.check.key)
            result = None
        self.on_result(result)
