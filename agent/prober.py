"""Runs one planned check through the right engine and judges the outcome."""

from __future__ import annotations

import time

from agent import evaluate, planner
from agent.checks import DNS_CONVERGING, TCP_CONVERGING, CheckResult, DnsCheck, TcpCheck
from agent.probes import tcp
from agent.probes.dns import DnsEngine


class Prober:
    def __init__(self, dns_engine: DnsEngine, *, tcp_timeout: float) -> None:
        self.dns = dns_engine
        self.tcp_timeout = tcp_timeout

    async def run(self, check: DnsCheck | TcpCheck, *, trace: bool = False) -> CheckResult:
        if isinstance(check, DnsCheck):
            return await self._dns(check, trace=trace)
        return await self._tcp(check)

    async def _dns(self, check: DnsCheck, *, trace: bool) -> CheckResult:
        candidates = planner.search_candidates(check.name, check.search, check.ndots)
        lookup = await self.dns.lookup(candidates, check.qtype, check.servers, trace=trace)
        result, detail = evaluate.judge(lookup.status, lookup.records, check.expect, check.qtype)
        if lookup.detail:
            detail = f"{detail}; {lookup.detail}" if detail else lookup.detail
        if result != "ok" and lookup.qname:
            detail = f"{detail} (last name tried: {lookup.qname})" if detail else f"last name tried: {lookup.qname}"
        now = time.time()
        converging = result in DNS_CONVERGING and now < check.settle_by
        if converging:
            detail = f"converging (the Service changed recently; grace for {check.settle_by - now:.0f}s more): {detail}"
        return CheckResult(
            check=check,
            result=result,
            duration_seconds=lookup.duration,
            finished_at=time.time(),
            queries=lookup.queries,
            server=lookup.server,
            detail=detail,
            answer=lookup.records,
            trace=tuple(lookup.trace) if lookup.trace is not None else None,
            converging=converging,
        )

    async def _tcp(self, check: TcpCheck) -> CheckResult:
        if check.no_endpoints:
            return CheckResult(check, "no_endpoints", 0.0, time.time(),
                               detail="the Service has no ready endpoint; not probed (expected)")
        outcome = await tcp.connect(check.address, check.port, timeout=self.tcp_timeout)
        now = time.time()
        converging = outcome.result in TCP_CONVERGING and now < check.settle_by
        detail = outcome.detail
        if converging:
            detail = f"converging (endpoints changed recently; grace for {check.settle_by - now:.0f}s more): {detail}"
        return CheckResult(check, outcome.result, outcome.duration, now, detail=detail, converging=converging)
