"""agent.report: `svcprobe check` output (issue 2, item 9).

The table shows a per-Service summary, the failing checks with their detail, and a summary
line; `--output json` prints {"results": [...]} with one object per check carrying at least
namespace, service, check, form, qtype, path, target, address, port, result,
duration_seconds, queries, detail.
"""

from __future__ import annotations

import json

import pytest

from agent import report
from agent.checks import CheckResult, DnsCheck, DnsExpectation, Expect, TcpCheck
from agent.results import SweepStats

SEARCH = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
SERVERS = (("127.0.0.53", 53),)
A_WEB = DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.10"}))
DOCUMENTED = ("namespace", "service", "check", "form", "qtype", "path", "target", "address", "port", "result",
              "duration_seconds", "queries", "detail")


def dns_check(service: str = "web", form: str = "fqdn", qtype: str = "A", name: str | None = None,
              expect: DnsExpectation = A_WEB) -> DnsCheck:
    name = name or {"short": service, "namespace": f"{service}.shop", "svc": f"{service}.shop.svc",
                    "fqdn": f"{service}.shop.svc.cluster.local."}[form]
    return DnsCheck("shop", service, form, qtype, "resolver", name, SEARCH, 5, SERVERS, expect)


def tcp_check(service: str = "web", path: str = "cluster_ip", address: str = "198.18.0.10", port: int = 80,
              family: str = "ipv4", no_endpoints: bool = False) -> TcpCheck:
    return TcpCheck("shop", service, path, address, port, family, "http", no_endpoints=no_endpoints)


def result(check: DnsCheck | TcpCheck, res: str = "ok", *, seconds: float = 0.0012345678, queries: int = 0,
           detail: str = "", answer: tuple[str, ...] = (), converging: bool = False) -> CheckResult:
    return CheckResult(check, res, seconds, 1_700_000_000.123456, queries=queries, server="127.0.0.53:53",
                       detail=detail, answer=answer, converging=converging)


WRONG = result(dns_check(form="namespace"), "wrong_answer", seconds=0.0042, queries=4,
               detail="A answer differs from the API: missing 198.18.0.10; unexpected 198.18.0.99",
               answer=("198.18.0.99",))
RESULTS = [
    result(dns_check(form="short"), queries=2, answer=("198.18.0.10",)),
    WRONG,
    # result labels are judged: an expected NODATA / NXDOMAIN that came back is "ok"
    result(dns_check(form="fqdn", qtype="AAAA", expect=DnsExpectation(Expect.NODATA)), "ok", queries=1),
    result(tcp_check(), "ok"),
    result(tcp_check(path="endpoint", address="fd00::21", port=8080, family="ipv6"), "refused", seconds=0.0005,
           detail="connection refused"),
    result(dns_check("db", qtype="A", expect=DnsExpectation(Expect.NXDOMAIN)), "ok", queries=1),
    result(tcp_check("gateway", address="198.18.7.7", no_endpoints=True), "no_endpoints"),
]
STATS = SweepStats(started_at=1_700_000_000.0, finished_at=1_700_000_001.5, duration=1.5, checks=len(RESULTS))


def test_table_summary_rows() -> None:
    out = report.to_table(RESULTS, STATS)
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:4]}
    assert out.splitlines()[0].split() == ["SERVICE", "DNS", "OK", "TCP", "OK", "STATUS"]
    assert rows["shop/db"][1:] == ["1/1", "-", "ok"]
    assert rows["shop/gateway"][1:] == ["0/0", "1/1", "ok", "(no", "ready", "endpoints)"]
    assert rows["shop/web"][1:] == ["2/3", "1/2", "FAIL", "refused,wrong_answer"]


def test_table_failing_rows_carry_the_detail() -> None:
    out = report.to_table(RESULTS, STATS)
    assert "FAILING CHECKS" in out and "ALL CHECKS" not in out
    failing = out.split("FAILING CHECKS", 1)[1]
    lines = [line for line in failing.splitlines() if line.startswith("shop/")]
    assert len(lines) == 2
    wrong, refused = lines
    assert wrong.split()[:8] == ["shop/web", "dns", "resolver", "namespace", "A", "web.shop", "wrong_answer", "4.2"]
    assert wrong.split()[8] == "4"  # queries
    assert wrong.endswith("A answer differs from the API: missing 198.18.0.10; unexpected 198.18.0.99")
    assert refused.split()[:6] == ["shop/web", "tcp", "endpoint", "[fd00::21]:8080", "refused", "0.5"]
    assert refused.split()[6] == "-" and refused.endswith("connection refused")
    # passing checks (expected NODATA/NXDOMAIN met, no_endpoints) are not listed
    assert "shop/db" not in failing and "AAAA" not in failing and "no_endpoints" not in failing


def test_table_summary_line() -> None:
    out = report.to_table(RESULTS, STATS)
    assert out.endswith("\n")
    assert out.splitlines()[-1] == "7 checks of 3 Services in 1.50s: 5 passing, 2 failing"


def test_table_show_all_lists_every_check() -> None:
    out = report.to_table(RESULTS, STATS, show_all=True)
    assert "ALL CHECKS" in out
    listed = [line for line in out.split("ALL CHECKS", 1)[1].splitlines() if line.startswith("shop/")]
    assert len(listed) == len(RESULTS)
    assert any(" 198.18.0.10:80 " in line for line in listed)


def test_table_all_healthy_has_no_failing_section() -> None:
    ok = [r for r in RESULTS if r.passing]
    out = report.to_table(ok, STATS)
    assert "FAILING CHECKS" not in out
    assert out.splitlines()[-1].endswith(f"{len(ok)} passing, 0 failing")


def test_table_converging_counts_as_passing() -> None:
    conv = result(dns_check(), "wrong_answer", detail="differs", converging=True)
    out = report.to_table([conv], STATS)
    assert "FAILING CHECKS" not in out
    assert out.splitlines()[-1].endswith("1 passing, 0 failing")


def test_table_empty_inventory() -> None:
    out = report.to_table([], STATS)
    assert out.splitlines()[0] == "(no Services in the inventory)"
    assert out.splitlines()[-1] == "0 checks of 0 Services in 1.50s: 0 passing, 0 failing"


@pytest.mark.parametrize(("lag", "warned"), [(0.0, False), (0.05, False), (0.2, True)])
def test_table_warns_about_event_loop_lag(lag: float, warned: bool) -> None:
    stats = SweepStats(duration=1.0, loop_lag=lag)
    out = report.to_table(RESULTS, stats)
    assert ("event loop lagged up to 200 ms" in out) is warned


def test_json_has_the_documented_fields() -> None:
    doc = json.loads(report.to_json(RESULTS, STATS))
    assert set(doc) >= {"results", "sweep"}
    assert len(doc["results"]) == len(RESULTS)
    for obj in doc["results"]:
        missing = [k for k in DOCUMENTED if k not in obj]
        assert not missing, missing
        assert obj["check"] in ("dns", "tcp")
        assert isinstance(obj["duration_seconds"], float)


def test_json_dns_object() -> None:
    doc = json.loads(report.to_json([WRONG], STATS))
    (obj,) = doc["results"]
    assert {k: obj[k] for k in DOCUMENTED} == {
        "namespace": "shop", "service": "web", "check": "dns", "form": "namespace", "qtype": "A",
        "path": "resolver", "target": None, "address": "127.0.0.53:53", "port": None, "result": "wrong_answer",
        "duration_seconds": 0.0042, "queries": 4,
        "detail": "A answer differs from the API: missing 198.18.0.10; unexpected 198.18.0.99",
    }
    assert obj["passing"] is False
    assert obj["name"] == "web.shop"
    assert obj["expected"] == "198.18.0.10" and obj["answer"] == ["198.18.0.99"]


def test_json_tcp_object() -> None:
    r = result(tcp_check(path="endpoint", address="fd00::21", port=8080, family="ipv6"), "timeout",
               seconds=2.000000499, detail="no answer in 2.0s")
    (obj,) = json.loads(report.to_json([r], STATS))["results"]
    assert {k: obj[k] for k in DOCUMENTED} == {
        "namespace": "shop", "service": "web", "check": "tcp", "form": None, "qtype": None,
        "path": "endpoint", "target": "endpoint", "address": "fd00::21", "port": 8080, "result": "timeout",
        "duration_seconds": 2.0, "queries": None, "detail": "no answer in 2.0s",
    }


def test_json_no_endpoints_is_passing() -> None:
    (obj,) = json.loads(report.to_json([RESULTS[-1]], STATS))["results"]
    assert (obj["result"], obj["passing"], obj["target"]) == ("no_endpoints", True, "cluster_ip")


def test_json_sweep_stats() -> None:
    sweep = json.loads(report.to_json(RESULTS, STATS))["sweep"]
    assert sweep["duration_seconds"] == 1.5 and sweep["checks"] == len(RESULTS)


@pytest.mark.parametrize(("running", "waiting", "warned"), [
    (0.2, None, False),   # the kernel gives no figures
    (0.2, 0.01, False),   # a few ms of waiting: normal
    (0.01, 0.015, False),  # a high share, but only a time slice or so in all
    (0.2, 0.1, True),     # a third of the time wanted spent waiting: another process had the CPU
])
def test_table_warns_about_cpu_starvation(running: float, waiting: float | None, warned: bool) -> None:
    stats = SweepStats(duration=1.0, cpu_seconds=running, cpu_wait_seconds=waiting)
    out = report.to_table(RESULTS, stats)
    assert ("waited for a CPU" in out) is warned
    if warned:
        assert "33% of the time it needed one (100 ms)" in out


def test_findings_come_first_and_say_what_to_look_at() -> None:
    from agent.findings import Topology, analyze

    findings = analyze(RESULTS, Topology(pod_of=lambda ns, svc, addr: f"{ns}/web-7f9c"))
    out = report.to_table(RESULTS, STATS, findings=findings)
    lines = out.splitlines()
    assert lines[0] == "FINDINGS (2)"
    assert "endpoint_down: pod shop/web-7f9c (fd00::21)" in out and "service_records: Service shop/web" in out
    assert out.index("look at: that pod") < out.index("SERVICE  ")
    assert report.to_table([r for r in RESULTS if r.passing], STATS, findings=[]).startswith("FINDINGS: none\n")
    doc = json.loads(report.to_json(RESULTS, STATS, findings))
    assert [f["kind"] for f in doc["findings"]] == [f.kind.value for f in findings]
