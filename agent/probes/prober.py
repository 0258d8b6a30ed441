"""Runs one planned check through the right engine and judges the outcome.

Two ways in: `await run(check)` for any check (the debug view, TCP checks), and
`submit(check, on_result)` for DNS checks, which starts the lookup on the engine's callback
API (no task or coroutine per check) and calls `on_result` with the judged result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from agent import resolvers
from agent.checks import DNS_CONVERGING, TCP_CONVERGING, CheckResult, DnsCheck, DnsResult, TcpCheck, TcpResult
from agent.probes import answers, tcp
from agent.probes.dns import DnsEngine, Lookup

log = logging.getLogger(__name__)
_CAUSE_RANK = {r: i for i, r in enumerate((DnsResult.TIMEOUT, DnsResult.SERVFAIL, DnsResult.REFUSED, DnsResult.ERROR,
                                            DnsResult.WRONG_ANSWER, DnsResult.NXDOMAIN, DnsResult.NODATA,
                                            DnsResult.OK))}


class Prober:
    def __init__(self, dns_engine: DnsEngine, *, tcp_timeout: float) -> None:
        self.dns = dns_engine
        self.tcp_timeout = tcp_timeout

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

    def candidates(self, check: DnsCheck) -> Sequence[str] | resolvers.Walk:
        """An absolute name is asked alone, the same by every C library; a relative one is
        walked as each of `check.resolvers` would (agent.resolvers)."""
        if check.name.endswith("."):
            return (check.name,)
        return resolvers.plan(check.name, check.search, check.ndots, check.zone, check.resolvers,
                              zone_only=check.zone_only)

    def judge(self, check: DnsCheck, lookup: Lookup) -> CheckResult:
        by_resolver: tuple[tuple[str, str], ...] = ()
        if lookup.walk is None or lookup.steps is None:
            result, detail = self._verdict(check, lookup.status, lookup.records, lookup.detail, lookup.qname)
            records, server = tuple(lookup.records), lookup.server
        else:
            result, detail, records, server, by_resolver = self._per_resolver(check, lookup.walk, lookup.steps)
            server = server or lookup.server
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
            server=server,
            detail=detail,
            answer=records,
            trace=tuple(lookup.trace) if lookup.trace is not None else None,
            converging=converging,
            by_resolver=by_resolver,
        )

    @staticmethod
    def _verdict(check: DnsCheck, status: str, records: Sequence[str], why: str, qname: str) -> tuple[DnsResult, str]:
        result, detail = answers.judge(status, records, check.expect, check.qtype)
        if why:
            detail = f"{detail}; {why}" if detail else why
        if result is not DnsResult.OK and qname:
            detail = f"{detail} (last name tried: {qname})" if detail else f"last name tried: {qname}"
        return result, detail

    def _per_resolver(self, check: DnsCheck, walk: resolvers.Walk, steps: dict[int, resolvers.Step],
                      ) -> tuple[DnsResult, str, tuple[str, ...], str, tuple[tuple[str, str], ...]]:
        """Judge what each C library gets; the check fails when any of them fails, and its
        result, answer and detail are those of the failing one that says most."""
        verdicts = []
        for f, flavour in enumerate(walk.flavours):
            out = resolvers.outcome(walk, f, steps)
            if not out.status:  # it asks no name cluster DNS answers: nothing here to hold against it
                verdicts.append((flavour, DnsResult.OK, out.detail, out))
                continue
            result, detail = self._verdict(check, out.status, out.records, out.detail, out.qname)
            verdicts.append((flavour, result, detail, out))
        # Where they disagree, the result that says most about the cause leads: a SERVFAIL that
        # musl stops at says more than the NXDOMAIN glibc ends with after walking past it.
        failing = sorted((v for v in verdicts if v[1] is not DnsResult.OK), key=lambda v: _CAUSE_RANK[v[1]])
        flavour, result, detail, out = failing[0] if failing else verdicts[0]
        by = tuple((fl, str(r)) for fl, r, _, _ in verdicts)
        if len({r for _, r in by}) == 1:
            by = ()
        if failing and by:  # they disagree: say who fails, and what the others got
            others = ", ".join(f"{fl}: {r}" for fl, r in by if fl != flavour)
            detail = f"{flavour}: {detail} ({others})"
        return result, detail, out.records, out.server, by

    async def _tcp(self, check: TcpCheck) -> CheckResult:
        if check.no_endpoints:
            why = (f"{check.policy}TrafficPolicy is Local and no ready endpoint runs on this node: kube-proxy "
                   "drops these connections here by design; not probed (expected)"
                   if check.local_only else "the Service has no ready endpoint; not probed (expected)")
            return CheckResult(check, TcpResult.NO_ENDPOINTS, 0.0, time.time(), detail=why)
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
