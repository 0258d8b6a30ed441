"""agent.answers.judge: an answer against the expectation computed from the API.

`ok` when the answer matches (an expected NODATA/NXDOMAIN included), `wrong_answer` when
records came back but differ (the detail names missing and unexpected records), otherwise
the DNS outcome itself passes through (DESIGN §3, reference/k8s-dns.md §3.5 outcome table).
"""

from __future__ import annotations

import pytest

from agent.checks import DnsExpectation, Expect, SrvRecord
from agent.probes.answers import judge

SUFFIX = "db.shop.svc.cluster.local."
V4 = DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.1", "198.18.0.2"}))
V6 = DnsExpectation(Expect.ANSWER, frozenset({"fd00::1"}))
CNAME = DnsExpectation(Expect.ANSWER, frozenset({"api.example.com."}))
NODATA = DnsExpectation(Expect.NODATA)
NXDOMAIN = DnsExpectation(Expect.NXDOMAIN)
SRV_CIP = DnsExpectation(Expect.ANSWER, srv=(SrvRecord(80, "web.shop.svc.cluster.local."),))
SRV_HEADLESS = DnsExpectation(
    Expect.ANSWER,
    srv=(SrvRecord(5432, f"db-0.{SUFFIX}"), SrvRecord(5432, ""), SrvRecord(5432, "")),
    srv_suffix=SUFFIX,
)


@pytest.mark.parametrize(
    ("status", "records", "expect", "qtype", "result", "detail_words"),
    [
        # --- answers that match
        pytest.param("answer", ["198.18.0.2", "198.18.0.1"], V4, "A", "ok", [], id="a-order-insensitive"),
        pytest.param("answer", ["198.18.0.1", "198.18.0.2", "198.18.0.1"], V4, "A", "ok", [],
                     id="a-duplicate-rr-ignored"),
        pytest.param("answer", ["FD00::1"], V6, "AAAA", "ok", [], id="aaaa-case-insensitive"),
        pytest.param("answer", ["Api.Example.COM."], CNAME, "CNAME", "ok", [], id="cname-case-insensitive"),
        pytest.param("answer", ["80 web.shop.svc.cluster.local."], SRV_CIP, "SRV", "ok", [], id="srv-cluster-ip"),
        pytest.param("answer", [f"5432 10-0-0-2.{SUFFIX}", f"5432 db-0.{SUFFIX}", f"5432 10-0-0-3.{SUFFIX}"],
                     SRV_HEADLESS, "SRV", "ok", [], id="srv-wildcards-match-names-under-the-service"),
        # --- expected negative answers met
        pytest.param("nodata", [], NODATA, "AAAA", "ok", [], id="expected-nodata-met"),
        pytest.param("nxdomain", [], NXDOMAIN, "A", "ok", [], id="expected-nxdomain-met"),
        # --- records that differ
        pytest.param("answer", ["198.18.0.1"], V4, "A", "wrong_answer",
                     ["A answer differs from the API", "missing 198.18.0.2"], id="a-missing"),
        pytest.param("answer", ["198.18.0.1", "198.18.0.2", "198.18.0.9"], V4, "A", "wrong_answer",
                     ["unexpected 198.18.0.9"], id="a-extra"),
        pytest.param("answer", ["198.18.0.1", "198.18.0.9"], V4, "A", "wrong_answer",
                     ["missing 198.18.0.2; unexpected 198.18.0.9"], id="a-missing-and-extra"),
        pytest.param("answer", ["other.example.com."], CNAME, "CNAME", "wrong_answer",
                     ["missing api.example.com.", "unexpected other.example.com."], id="cname-wrong-target"),
        pytest.param("answer", ["8080 web.shop.svc.cluster.local."], SRV_CIP, "SRV", "wrong_answer",
                     ["missing 80 web.shop.svc.cluster.local.", "unexpected 8080 web.shop.svc.cluster.local."],
                     id="srv-wrong-port"),
        pytest.param("answer", ["80 other.shop.svc.cluster.local."], SRV_CIP, "SRV", "wrong_answer",
                     ["unexpected 80 other.shop.svc.cluster.local."], id="srv-wrong-target"),
        pytest.param("answer", [f"5432 db-0.{SUFFIX}", f"5432 10-0-0-2.{SUFFIX}"], SRV_HEADLESS, "SRV",
                     "wrong_answer", [f"missing 5432 *.{SUFFIX}"], id="srv-wildcard-missing"),
        pytest.param("answer", [f"5432 10-0-0-2.{SUFFIX}", f"5432 10-0-0-3.{SUFFIX}", f"5432 10-0-0-4.{SUFFIX}"],
                     SRV_HEADLESS, "SRV", "wrong_answer", [f"missing 5432 db-0.{SUFFIX}",
                                                          f"unexpected 5432 10-0-0-4.{SUFFIX}"],
                     id="srv-named-target-not-taken-by-wildcard"),
        pytest.param("answer", [f"5432 db-0.{SUFFIX}", "5432 a.other.shop.svc.cluster.local.",
                                f"5432 10-0-0-3.{SUFFIX}"], SRV_HEADLESS, "SRV", "wrong_answer",
                     [f"missing 5432 *.{SUFFIX}", "unexpected 5432 a.other.shop.svc.cluster.local."],
                     id="srv-wildcard-outside-the-service"),
        pytest.param("answer", [f"5432 db-0.{SUFFIX}", f"5433 10-0-0-2.{SUFFIX}", f"5432 10-0-0-3.{SUFFIX}"],
                     SRV_HEADLESS, "SRV", "wrong_answer", [f"unexpected 5433 10-0-0-2.{SUFFIX}"],
                     id="srv-wildcard-wrong-port"),
        pytest.param("answer", [f"5432 {SUFFIX}", f"5432 db-0.{SUFFIX}", f"5432 x.{SUFFIX}"],
                     SRV_HEADLESS, "SRV", "wrong_answer", [f"unexpected 5432 {SUFFIX}"],
                     id="srv-wildcard-needs-a-label-under-the-service"),
        # --- expected negative, got records
        pytest.param("answer", ["fd00::1"], NODATA, "AAAA", "wrong_answer", ["expected NODATA", "fd00::1"],
                     id="expected-nodata-got-records"),
        pytest.param("answer", ["198.18.0.1"], NXDOMAIN, "A", "wrong_answer", ["expected NXDOMAIN", "198.18.0.1"],
                     id="expected-nxdomain-got-records"),
        # --- negative answers that were not expected: the outcome itself
        pytest.param("nxdomain", [], V4, "A", "nxdomain", ["got NXDOMAIN, expected 198.18.0.1 198.18.0.2"],
                     id="nxdomain-instead-of-records"),
        pytest.param("nodata", [], V4, "A", "nodata", ["got NODATA, expected 198.18.0.1 198.18.0.2"],
                     id="nodata-instead-of-records"),
        pytest.param("nxdomain", [], NODATA, "AAAA", "nxdomain", ["got NXDOMAIN, expected NODATA"],
                     id="nxdomain-instead-of-nodata"),
        pytest.param("nodata", [], NXDOMAIN, "A", "nodata", ["got NODATA, expected NXDOMAIN"],
                     id="nodata-instead-of-nxdomain"),
        pytest.param("nxdomain", [], SRV_HEADLESS, "SRV", "nxdomain", [f"5432:*.{SUFFIX}", f"5432:db-0.{SUFFIX}"],
                     id="srv-expected-described"),
    ],
)
def test_judge(status: str, records: list[str], expect: DnsExpectation, qtype: str, result: str,
               detail_words: list[str]) -> None:
    got_result, detail = judge(status, records, expect, qtype)
    assert got_result == result
    if result == "ok":
        assert detail == ""
    for w in detail_words:
        assert w in detail


@pytest.mark.parametrize("status", ["servfail", "refused", "timeout", "error"])
@pytest.mark.parametrize("expect", [pytest.param(V4, id="answer"), pytest.param(NODATA, id="nodata"),
                                    pytest.param(NXDOMAIN, id="nxdomain")])
def test_failures_pass_through(status: str, expect: DnsExpectation) -> None:
    assert judge(status, [], expect, "A") == (status, "")


def test_a_subset_expectation_allows_other_names_but_not_a_missing_one() -> None:
    want = DnsExpectation(Expect.ANSWER, frozenset({"db-0.db.shop.svc.cluster.local."}), subset=True)
    both = ["db-0.db.shop.svc.cluster.local.", "x.other.shop.svc.cluster.local."]
    assert judge("answer", both, want, "PTR")[0] == "ok"
    result, detail = judge("answer", both[1:], want, "PTR")
    assert result == "wrong_answer" and "missing db-0.db.shop.svc.cluster.local." in detail


def test_some_address_is_required_of_an_external_names_target() -> None:
    some = DnsExpectation(Expect.RESOLVES)
    assert judge("answer", ["203.0.113.7"], some, "A")[0] == "ok"
    result, detail = judge("nodata", [], some, "A")  # a CNAME whose target did not resolve
    assert result == "nodata" and "some address" in detail
    assert judge("nxdomain", [], some, "A")[0] == "nxdomain"
