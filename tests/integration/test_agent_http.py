"""The running agent over HTTP: metrics, results API, debug probe, reloads, shutdown.

The agent runs in-process against the demo sandbox (a DNS server and TCP backends on
127.0.0.0/8); every assertion goes through its real HTTP server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent import runner
from agent.demo import sandbox
from agent.demo.dnsserver import DnsServer
from tests.support.chart import metric_contract


@dataclasses.dataclass
class Running:
    agent: runner.Agent
    base: str
    dns: DnsServer
    inventory_file: Path
    stop: asyncio.Event
    http: aiohttp.ClientSession
    block: int

    def addr(self, address: str) -> str:
        return sandbox.relocate(address, self.block)

    async def get(self, path: str) -> tuple[int, Any, dict[str, str]]:
        async with self.http.get(self.base + path) as resp:
            if resp.content_type == "application/json":
                body: Any = await resp.json()
            else:
                body = await resp.text()
            return resp.status, body, dict(resp.headers)

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        status, text, _ = await self.get("/metrics")
        assert status == 200
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
        return out

    async def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
        """Poll until `predicate` (sync or async) holds; bounded in time."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    inventory_file = tmp_path / "inventory.yaml"
    async with sandbox.open_sandbox(str(inventory_file), prefer_default=False) as (dns_server, block):
        s = sandbox.settings_for(dns_server.address, inventory_file=str(inventory_file),
                                 listen="127.0.0.1:0", interval=0.5)
        s = dataclasses.replace(s, inventory=dataclasses.replace(s.inventory, reload_seconds=0.5),
                                shutdown=dataclasses.replace(s.shutdown, drain_seconds=0.5))
        agent = runner.build(s)
        stop = asyncio.Event()
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(agent.run(stop=stop, on_listening=lambda h, p: listening.set_result(f"http://{h}:{p}")))
        base = await asyncio.wait_for(listening, 10)
        async with aiohttp.ClientSession() as http:
            r = Running(agent, base, dns_server, inventory_file, stop, http, block)
            await r.wait_for(lambda: agent.store.sweeps >= 1, "the first sweep")
            yield r
        stop.set()
        await asyncio.wait_for(task, 30)


def failing_series(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> set[tuple[str, ...]]:
    return {(l["namespace"], l["service"], l["check"], l["path"], l["result"])
            for l, v in metrics.get("svcprobe_service_failing", []) if v == 1}


async def test_metrics_follow_the_contract(running: Running) -> None:
    m = await running.metrics()
    assert failing_series(m) == {
        ("shop", "search", "dns", "resolver", "wrong_answer"),
        ("shop", "reviews", "dns", "resolver", "nxdomain"),
        ("shop", "checkout", "tcp", "endpoint", "refused"),
    }
    # Histograms and counters carry exactly the documented labels.
    expected_labels = {
        "svcprobe_dns_lookup_duration_seconds_bucket": {"form", "path", "le"},
        "svcprobe_dns_lookups_total": {"form", "qtype", "path", "server", "result"},
        "svcprobe_dns_queries_per_lookup_bucket": {"form", "le"},
        "svcprobe_tcp_connect_duration_seconds_bucket": {"target", "family", "le"},
        "svcprobe_tcp_connects_total": {"target", "family", "result"},
    }
    for name, labels in expected_labels.items():
        assert m[name], name
        assert all(set(l) == labels for l, _ in m[name]), name
    forms = {l["form"] for l, _ in m["svcprobe_dns_lookups_total"]}
    assert forms == {"short", "namespace", "svc", "fqdn", "hostname", "reverse"}  # docs/metrics.md
    results = {l["result"] for l, _ in m["svcprobe_tcp_connects_total"]}
    assert {"ok", "refused", "no_endpoints"} <= results
    server = f"{running.dns.address[0]}:{running.dns.address[1]}"
    assert {l["server"] for l, _ in m["svcprobe_dns_lookups_total"]} == {server}
    # Search amplification is visible: the short form of a missing name walks 4 candidates.
    assert any(l["form"] == "short" and l["le"] == "4.0" and v > 0
               for l, v in m["svcprobe_dns_queries_per_lookup_bucket"])
    # Every sample the agent exports is in docs/metrics.md, with exactly the documented labels.
    contract = metric_contract()
    undocumented = sorted(set(m) - set(contract))
    assert not undocumented, f"exported but not in docs/metrics.md: {undocumented}"
    for name, samples in m.items():
        assert all(set(l) == contract[name]["labels"] for l, _ in samples), name
    # Agent health.
    assert m["svcprobe_inventory_services"][0][1] == 10
    assert m["svcprobe_sweeps_total"][0][1] >= 1
    assert m["svcprobe_last_sweep_timestamp_seconds"][0][1] > 0
    assert {l["kind"]: v for l, v in m["svcprobe_targets"]}["not_probed"] == 1  # the UDP port
    assert m["svcprobe_build_info"][0][0]["version"]


async def test_removed_service_takes_its_series_with_it(running: Running) -> None:
    doc = yaml.safe_load(running.inventory_file.read_text())
    doc["items"] = [i for i in doc["items"]
                    if not (i["metadata"]["namespace"] == "shop" and i["metadata"]["name"].startswith("search"))]
    running.inventory_file.write_text(yaml.safe_dump(doc))

    async def gone() -> bool:
        return not any(s[1] == "search" for s in failing_series(await running.metrics()))

    await running.wait_for(gone, "shop/search series to disappear")
    status, body, _ = await running.get("/api/v1/results?service=search")
    assert status == 200 and body["results"] == []
    m = await running.metrics()
    assert m["svcprobe_inventory_services"][0][1] == 9
    assert ("shop", "reviews", "dns", "resolver", "nxdomain") in failing_series(m)


@pytest.mark.parametrize("bad", [
    pytest.param("items: [\n  - {unclosed\n", id="broken-yaml"),
    pytest.param(yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
                                 "metadata": {"name": "x", "namespace": "shop"},
                                 "spec": {"clusterIP": "999.1.1.1"}}), id="invalid-ip"),
])
async def test_bad_reload_keeps_the_last_good_inventory(running: Running, bad: str) -> None:
    before = (await running.metrics())["svcprobe_inventory_services"][0][1]
    running.inventory_file.write_text(bad)

    async def rejected() -> bool:
        m = await running.metrics()
        return any(l["result"] == "error" and v >= 1 for l, v in m["svcprobe_inventory_reloads_total"])

    await running.wait_for(rejected, "the bad reload to be counted")
    sweeps = running.agent.store.sweeps
    await running.wait_for(lambda: running.agent.store.sweeps > sweeps, "another sweep")
    m = await running.metrics()
    assert m["svcprobe_inventory_services"][0][1] == before
    status, body, _ = await running.get("/api/v1/results?service=frontend&check=tcp")
    assert status == 200 and body["results"] and all(r["result"] == "ok" for r in body["results"])
    assert body["inventory"]["last_error"]
    assert (await running.get("/readyz"))[0] == 200


async def test_results_api_filters(running: Running) -> None:
    status, body, _ = await running.get("/api/v1/results?failing=true")
    assert status == 200
    assert {(r["service"], r["result"]) for r in body["results"]} >= {("search", "wrong_answer"),
                                                                      ("checkout", "refused")}
    assert all(not r["passing"] for r in body["results"])
    assert body["summary"]["failing"] == len(body["results"])
    assert body["sweep"]["checks"] > 0
    status, body, _ = await running.get("/api/v1/results?namespace=default&check=dns")
    assert {r["service"] for r in body["results"]} == {"kubernetes"}
    assert all(r["check"] == "dns" and r["queries"] >= 1 for r in body["results"])
    legacy = (await running.get("/api/v1/results?service=legacy&check=tcp"))[1]["results"]
    assert [r["result"] for r in legacy] == ["no_endpoints"] and legacy[0]["passing"] is True


@pytest.mark.parametrize(("query", "needle"), [
    ("?bogus=1", "unknown query parameter 'bogus'"),
    ("?failing=maybe", "failing must be true or false"),
    ("?check=udp", "check must be dns or tcp"),
    ("?namespace=Not_A_Name", "is not a Kubernetes name"),
    ("?service=a&service=b", "more than once"),
])
async def test_results_api_rejects_bad_queries(running: Running, query: str, needle: str) -> None:
    status, body, _ = await running.get("/api/v1/results" + query)
    assert status == 400
    assert needle in body["error"]


async def test_debug_probe_runs_one_service_now(running: Running) -> None:
    before = len(running.dns.queries)
    status, body, _ = await running.get("/debug/probe?service=shop/search")
    assert status == 200
    assert body["service"] == "shop/search"
    dns_results = [r for r in body["results"] if r["check"] == "dns"]
    assert {r["form"] for r in dns_results} == {"short", "namespace", "svc", "fqdn", "reverse"}
    a_fqdn = next(r for r in dns_results if r["form"] == "fqdn" and r["qtype"] == "A")
    assert a_fqdn["result"] == "wrong_answer"
    assert a_fqdn["expected"] == running.addr("127.0.10.21") and a_fqdn["answer"] == [running.addr("127.0.10.99")]
    assert a_fqdn["trace"][0]["qname"] == "search.shop.svc.cluster.local."
    assert running.addr("127.0.10.99") in a_fqdn["trace"][0]["reply"]
    # Every query the probe sent (its trace lists them all) was about this Service, and the
    # server saw each of them.
    asked = [t["qname"] for r in dns_results for t in r["trace"]]
    assert len(asked) >= len(dns_results)
    ptr = next(r["name"] for r in dns_results if r["qtype"] == "PTR")  # its ClusterIP's reverse name
    assert all(q.startswith(("search.", "_http._tcp.search.")) or q == ptr for q in asked)
    seen = {q[0] for q in running.dns.queries[before:]}
    assert set(asked) <= seen


async def test_findings_name_each_planted_fault_once(running: Running) -> None:
    """The demo's three faults give three findings, on /api/v1/findings, in /metrics and in the
    debug view of the Service concerned; the healthy Services give none."""
    await running.wait_for(lambda: running.agent.findings.current, "findings after a sweep")
    status, body, _ = await running.get("/api/v1/findings")
    assert status == 200 and body["agent"]["version"] and body["sweep"]["checks"] > 0
    got = sorted((f["kind"], f["suspect"]["text"]) for f in body["findings"])
    checkout = next(f for f in body["findings"] if f["kind"] == "endpoint_down")
    assert got == sorted([("service_records", "Service shop/search"), ("service_records", "Service shop/reviews"),
                          ("endpoint_down", checkout["suspect"]["text"])])
    assert checkout["evidence"]["services"] == ["shop/checkout"] and checkout["look_at"]
    gauges = {(lab["kind"], lab["suspect"]) for lab, v in (await running.metrics())["svcprobe_finding"] if v == 1}
    assert gauges == set(got)
    assert (await running.get("/api/v1/findings?kind=x"))[0] == 400
    # Which agent answered, and the results filters.
    for path in ("/healthz", "/api/v1/results"):
        assert (await running.get(path))[1]["agent"] == body["agent"]
    status, dns_wrong, _ = await running.get("/api/v1/results?result=wrong_answer&path=resolver")
    assert status == 200 and dns_wrong["results"]
    assert {(r["service"], r["result"], r["path"]) for r in dns_wrong["results"]} == {
        ("search", "wrong_answer", "resolver")}
    for bad in ("result=fine", "path=somewhere"):
        status, err, _ = await running.get(f"/api/v1/results?{bad}")
        assert status == 400 and bad.split("=")[0] + " must be one of" in err["error"]
    await asyncio.sleep(1.1)  # the debug probe's rate limit
    status, probe, _ = await running.get("/debug/probe?service=shop/search")
    assert [f["suspect"]["text"] for f in probe["findings"]] == ["Service shop/search"]


async def test_the_runbook_is_served_with_an_anchor_for_every_link(running: Running) -> None:
    """Alert links (runbook_url) and finding kinds land on a section of /runbook."""
    from agent.findings import Kind
    from tests.support.chart import alerts

    status, page, headers = await running.get("/runbook")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    anchors = set(re.findall(r"<h\d id='([^']+)'>", page))
    for rule in alerts():
        fragment = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert fragment in anchors, rule["alert"]
    assert {f"finding-{k.value}" for k in Kind} <= anchors
    assert "<script" not in page.lower()  # escaped text only
    assert (await running.get("/runbook?x=1"))[0] == 400


@pytest.mark.parametrize(("query", "status"), [
    ("?service=shop/nope", 404),
    ("?service=shop", 400),
    ("?service=127.0.0.1", 400),
    ("?service=shop/search.evil.example", 400),
    ("?service=shop/search&address=1.2.3.4", 400),
    ("", 400),
])
async def test_debug_probe_only_accepts_inventory_services(running: Running, query: str, status: int) -> None:
    before = len(running.dns.queries)
    got, body, _ = await running.get("/debug/probe" + query)
    assert got == status
    assert body["error"]
    # Nothing was asked about what the query string named (sweeps may be running meanwhile).
    # (The sweeps' PTR names of the sandbox's 127.0.x.y ClusterIPs end in .0.127.in-addr.arpa.)
    assert not any(w in q[0] for q in running.dns.queries[before:] for w in ("nope", "evil", "127.", "1.2.3.4")
                   if not q[0].endswith(".in-addr.arpa."))


async def test_debug_probe_is_rate_limited(running: Running) -> None:
    first = await running.get("/debug/probe?service=shop/frontend")
    second = await running.get("/debug/probe?service=shop/frontend")
    assert first[0] == 200
    assert second[0] == 429
    assert int(second[2]["Retry-After"]) >= 1


async def test_health_and_drain_on_stop(running: Running) -> None:
    assert (await running.get("/healthz"))[0] == 200
    assert (await running.get("/readyz"))[0] == 200
    running.stop.set()

    async def draining() -> bool:
        status, body, _ = await running.get("/readyz")
        return status == 503 and body["status"] == "draining"

    await running.wait_for(draining, "readyz to report draining")


async def test_openmetrics_when_asked(running: Running) -> None:
    async with running.http.get(running.base + "/metrics",
                                headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as resp:
        text = await resp.text()
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
