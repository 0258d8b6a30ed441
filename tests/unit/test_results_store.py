"""The results store keeps its failing series current as results come and go."""

from __future__ import annotations

from agent.checks import CheckResult, DnsCheck, DnsExpectation, Expect, TcpCheck
from agent.results import ResultStore, SweepStats


def dns(service: str, form: str) -> DnsCheck:
    return DnsCheck("ns", service, form, "A", "resolver", service, (), 5, (("127.0.0.1", 53),),
                    DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.1"})))


def tcp(service: str) -> TcpCheck:
    return TcpCheck("ns", service, "endpoint", "198.19.0.1", 80, "ipv4", "http")


def res(check: DnsCheck | TcpCheck, result: str, converging: bool = False) -> CheckResult:
    return CheckResult(check, result, 0.001, 0.0, converging=converging)


def test_failing_series_follow_puts_replacements_and_removals() -> None:
    store = ResultStore()
    store.put(res(dns("a", "short"), "nxdomain"))
    store.put(res(dns("a", "fqdn"), "nxdomain"))
    store.put(res(tcp("a"), "refused"))
    store.put(res(dns("b", "fqdn"), "ok"))
    store.put(res(tcp("b"), "no_endpoints"))
    store.put(res(dns("c", "fqdn"), "wrong_answer", converging=True))
    assert store.failing_series() == [("ns", "a", "dns", "resolver", "nxdomain"),
                                      ("ns", "a", "tcp", "endpoint", "refused")]
    store.put(res(dns("a", "short"), "ok"))  # one of the two failing checks behind the series
    assert ("ns", "a", "dns", "resolver", "nxdomain") in store.failing_series()
    store.put(res(dns("a", "fqdn"), "timeout"))
    assert ("ns", "a", "dns", "resolver", "nxdomain") not in store.failing_series()
    assert ("ns", "a", "dns", "resolver", "timeout") in store.failing_series()
    store.retain_services([("ns", "b")])
    assert store.failing_series() == []
    stats = SweepStats()
    store.finish_sweep(stats, failing_budget=10)
    assert stats.failing == 0 and len(store) == 2


def test_retain_by_check_key_updates_failing_counts() -> None:
    store = ResultStore()
    keep, drop = dns("a", "fqdn"), tcp("a")
    store.put(res(keep, "servfail"))
    store.put(res(drop, "timeout"))
    store.retain([keep.key])
    assert store.failing_series() == [("ns", "a", "dns", "resolver", "servfail")]
    stats = SweepStats()
    store.finish_sweep(stats, failing_budget=0)
    assert stats.failing == 1 and store.series_dropped == 1
