"""Judging an answer against what the API says it must be (pure).

The result label is `ok` when the answer matches the expectation, including an expected
NODATA or NXDOMAIN; `wrong_answer` when records came back but differ; otherwise the DNS
outcome itself (nxdomain, nodata, servfail, refused, timeout, error).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from agent.checks import DnsExpectation, DnsResult, Expect


def _srv_diff(got: Sequence[str], expect: DnsExpectation) -> tuple[list[str], list[str]]:
    remaining: Counter[tuple[int, str]] = Counter()
    for text in got:
        port, _, target = text.partition(" ")
        remaining[(int(port), target)] += 1
    missing: list[str] = []
    wildcards = []
    for rec in expect.srv:
        if not rec.target:
            wildcards.append(rec)
        elif remaining[(rec.port, rec.target)]:
            remaining[(rec.port, rec.target)] -= 1
        else:
            missing.append(f"{rec.port} {rec.target}")
    for rec in wildcards:
        match = next((k for k, n in remaining.items() if n and k[0] == rec.port
                      and k[1].endswith("." + expect.srv_suffix)), None)
        if match is None:
            missing.append(f"{rec.port} *.{expect.srv_suffix}")
        else:
            remaining[match] -= 1
    extra = [f"{p} {t}" for (p, t), n in sorted(remaining.items()) for _ in range(n)]
    return missing, extra


def judge(status: str, records: Sequence[str], expect: DnsExpectation, qtype: str) -> tuple[DnsResult, str]:
    """(result label, detail) for a lookup that ended with `status` (a `Status` of the DNS
    engine: answer, nodata, nxdomain, servfail, refused, timeout, error) and `records`."""
    if expect.kind is Expect.RESOLVES and status == "answer":
        return DnsResult.OK, ""
    if status == "answer":
        if expect.kind is Expect.ANSWER:
            if qtype == "SRV":
                missing, extra = _srv_diff(records, expect)
            else:
                got = {r.lower() for r in records}
                missing = sorted(expect.records - got)
                extra = [] if expect.subset else sorted(got - expect.records)
            if not missing and not extra:
                return DnsResult.OK, ""
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("unexpected " + ", ".join(extra))
            return DnsResult.WRONG_ANSWER, f"{qtype} answer differs from the API: " + "; ".join(parts)
        return DnsResult.WRONG_ANSWER, (f"expected {expect.kind.value.upper()}, got {qtype} "
                                + ", ".join(sorted(records)))
    if status == expect.kind.value:
        return DnsResult.OK, ""
    result = DnsResult(status)  # every other engine outcome is a result label of its own
    if result is DnsResult.NXDOMAIN or result is DnsResult.NODATA:
        want = expect.describe() if expect.kind in (Expect.ANSWER, Expect.RESOLVES) else expect.kind.value.upper()
        return result, f"got {status.upper()}, expected {want}"
    return result, ""
