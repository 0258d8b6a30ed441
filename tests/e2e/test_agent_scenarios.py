"""svcprobe against the real test bed: Services made through the API, faults injected into the
real CoreDNS, kube-proxy and backends, each detected on the right path with the right result, then
recovered.

`svcprobe check --output json` runs inside a node namespace (pod-like /etc/resolv.conf, that
node's kube-proxy rules) and discovers the Services from the API with a ServiceAccount token
through the `kubernetes` ClusterIP, as a DaemonSet pod does. The healthy case also runs from a
static inventory (`kubectl get svc,endpointslices -A -o yaml` through --inventory). The agent is
limited to the scenario's namespace (the canaries default/kubernetes and kube-system/kube-dns are
always probed), so objects of other e2e tests do not leak into the assertions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import stop
from tests.testbed.bed import KUBE_DNS_IP, Backend, TestBed, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WEB_PORTS = [("http", 80, "TCP", 8080), ("https", 443, "TCP", 8443)]
WEB_SLICE_PORTS = [("http", 8080, "TCP"), ("https", 8443, "TCP")]
DB_PORTS = [("pg", 5432, "TCP")]
DB_SLICE_PORTS = [("pg", 5432, "TCP")]
FORMS = {"short", "namespace", "svc", "fqdn"}
# A CoreDNS process that is gone: its address still exists, so a query either gets an ICMP port
# unreachable (refused) or nothing the agent can use in time (timeout). Never an answer.
NO_SERVER = {"timeout", "refused"}


@dataclass
class Shop:
    ns: str
    web: list[Backend]
    db: list[Backend]
    web_ip: str
    creds: Any  # conftest.AgentCredentials

    def restore(self, bed: TestBed) -> None:
        """Back to the healthy state every scenario starts from."""
        for r in range(1, bed.dns_replicas + 1):
            if not bed.process_running(f"coredns-{r}"):
                bed.start_coredns(r)
        for b in self.web + self.db:
            if not b.running:
                bed.start_backend(b.name)
        for node in bed.nodes:
            if not bed.process_running(f"kube-proxy-{node}"):
                bed.start_kube_proxy(node)
        bed.set_endpoints(self.ns, "web", self.web, ports=WEB_SLICE_PORTS)
        bed.set_endpoints(self.ns, "db", [{"ip": b.ip, "hostname": b.name, "target": b.name}
                                          for b in self.db], ports=DB_SLICE_PORTS)
        for node in bed.nodes:
            bed.wait_proxy_rule(node, self.web_ip, endpoints=self.web)
        # DNS caches (TTL 5 s in the bed) may still hold the answers of the last scenario.
        bed.wait_dns(f"db.{self.ns}.svc.cluster.local.", {b.ip for b in self.db})
        bed.wait_dns(f"db.{self.ns}.svc.cluster.local.", "NOERROR", "AAAA")
        # SRV answers are cached apart from A/AAAA: a scenario that waited for a negative SRV
        # answer leaves it cached for a TTL after the endpoints are back.
        want = {f"{b.name}.db.{self.ns}.svc.cluster.local." for b in self.db}
        bed.wait_dns(f"_pg._tcp.db.{self.ns}.svc.cluster.local.",
                     lambda got: isinstance(got, set) and {d.split()[-1] for d in got} == want,
                     "SRV")


@pytest.fixture(scope="module")
def shop(bed: TestBed, agent_credentials: Any) -> Iterator[Shop]:
    """Namespace with a multi-port ClusterIP Service (named ports), a headless Service whose
    endpoints have hostnames, and an ExternalName Service; all created through the API."""
    ns = f"shop-{os.getpid() % 100000}"
    bed.ensure_namespace(ns)
    web = [bed.add_backend(f"shopweb{i}-{ns[-5:]}", ports=[8080, 8443]) for i in range(2)]
    db = [bed.add_backend(f"shopdb{i}-{ns[-5:]}", ports=[5432]) for i in range(2)]
    svc = bed.create_service(ns, "web", ports=WEB_PORTS)
    bed.create_service(ns, "db", headless=True, ports=DB_PORTS)
    bed.create_service(ns, "ext", external_name=f"web.{ns}.svc.cluster.local", ports=[])
    shop = Shop(ns, web, db, svc["spec"]["clusterIP"], agent_credentials)
    shop.restore(bed)
    yield shop
    for b in web + db:
        bed.remove_backend(b.name)


@dataclass
class Check:
    rc: int
    results: list[dict[str, Any]]
    stderr: str
    findings: list[dict[str, Any]]

    def found(self) -> list[tuple[str, str]]:
        """(kind, suspect) of each finding: what the agent says broke."""
        return [(f["kind"], f["suspect"]["text"]) for f in self.findings]

    def select(self, **kw: Any) -> list[dict[str, Any]]:
        return [r for r in self.results if all(r.get(k) == v for k, v in kw.items())]

    def failing(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["passing"]]

    def summary(self, rows: list[dict[str, Any]] | None = None) -> str:
        rows = self.failing() if rows is None else rows
        return "\n".join(
            f"{r['namespace']}/{r['service']} {r['check']} {r['path']} {r['form'] or r['target']} "
            f"{r['qtype'] or ''} {r['address']}:{r['port']} -> {r['result']} {r['detail']}"
            for r in rows) or "(none)"


def run_check(bed: TestBed, shop: Shop, node: str = "node1", *, source: str = "api",
              **env: str) -> Check:
    """One `svcprobe check --output json` sweep inside `node`.

    source: "api" (discovery through the kubernetes ClusterIP), "api-direct" (the API server's
    own address, for a node whose kube-proxy is broken) or "inventory" (a fresh kubectl dump)."""
    envs = {"SVCPROBE_SELECTION_NAMESPACES": shop.ns, "SVCPROBE_SHARDING_REPLICAS": "0",
            "SVCPROBE_DNS_GRACE_SECONDS": "0", "SVCPROBE_NODE_NAME": node, **env}
    args = ["--output", "json"]
    if source == "inventory":
        inv = bed.workdir / f"inventory-{node}.yaml"
        inv.write_text(bed.inventory_yaml())
        args += ["--inventory", str(inv)]
    else:
        envs["SVCPROBE_KUBERNETES_KUBECONFIG"] = (
            shop.creds.direct if source == "api-direct" else shop.creds.via_service)
    cp = bed.node_exec(node, ["env", *(f"{k}={v}" for k, v in envs.items()),
                              sys.executable, "-m", "agent", "check", *args], timeout=180)
    assert cp.returncode in (0, 1), f"svcprobe check exited {cp.returncode}: {cp.stderr}"
    doc = json.loads(cp.stdout)
    return Check(cp.returncode, doc["results"], cp.stderr, doc["findings"])


def assert_healthy(bed: TestBed, shop: Shop, node: str = "node1", source: str = "api") -> Check:
    c = run_check(bed, shop, node, source=source)
    assert c.rc == 0 and not c.failing(), c.summary()
    assert c.found() == []  # a healthy node: nothing to look at
    return c


@pytest.mark.parametrize("source", ["api", "inventory"])
def test_services_resolved_in_all_forms_and_probed(bed: TestBed, shop: Shop, source: str) -> None:
    for node in bed.nodes:
        c = assert_healthy(bed, shop, node, source)
        ns = shop.ns
        # ClusterIP, multi-port with named ports
        web_dns = c.select(service="web", check="dns", path="resolver")
        assert {r["form"] for r in web_dns if r["qtype"] == "A"} == FORMS
        assert all(r["answer"] == [shop.web_ip] for r in web_dns if r["qtype"] == "A")
        assert {r["name"] for r in c.select(service="web", qtype="SRV")} == {
            f"_http._tcp.web.{ns}.svc.cluster.local.", f"_https._tcp.web.{ns}.svc.cluster.local."}
        assert {(r["address"], r["port"]) for r in c.select(service="web", check="tcp", path="cluster_ip")} == \
            {(shop.web_ip, 80), (shop.web_ip, 443)}
        assert {(r["address"], r["port"]) for r in c.select(service="web", check="tcp",
                                                           path="endpoint")} == \
            {(b.ip, p) for b in shop.web for p in (8080, 8443)}
        # headless with hostnames: A = the ready endpoints, SRV, TCP to every endpoint
        db_a = c.select(service="db", check="dns", qtype="A")
        assert {r["form"] for r in db_a} == FORMS | {"hostname"}
        assert all(sorted(r["answer"]) == sorted(b.ip for b in shop.db) for r in db_a if r["form"] != "hostname")
        # each pod's own name (the StatefulSet names): its own address
        assert {(r["name"], tuple(r["answer"])) for r in db_a if r["form"] == "hostname"} == {
            (f"{b.name}.db.{ns}.svc.cluster.local.", (b.ip,)) for b in shop.db}
        assert c.select(service="db", qtype="SRV")
        assert {r["address"] for r in c.select(service="db", check="tcp")} == {b.ip for b in shop.db}
        # ExternalName: its CNAME in every form, and web's addresses through it
        ext = c.select(service="ext", check="dns")
        assert {r["form"] for r in ext if r["qtype"] == "CNAME"} == FORMS
        assert {(r["form"], r["qtype"], tuple(r["answer"])) for r in ext if r["qtype"] != "CNAME"} == {
            ("fqdn", "A", (shop.web_ip,)), ("fqdn", "AAAA", ())}
        # the DNS paths: the resolver, the kube-dns ClusterIP, each CoreDNS replica
        dns_paths = {(r["path"], r["address"]) for r in c.select(check="dns")}
        assert {("resolver", KUBE_DNS_IP), ("cluster_ip", KUBE_DNS_IP)} <= dns_paths
        assert {("endpoint", bed.dns_ip(i)) for i in range(1, bed.dns_replicas + 1)} <= dns_paths


def test_coredns_stopped_then_recovered(bed: TestBed, shop: Shop) -> None:
    try:
        for r in range(1, bed.dns_replicas + 1):
            bed.stop_coredns(r)
        c = run_check(bed, shop)
        assert c.rc == 1
        dns = c.select(check="dns")
        assert dns and all(r["result"] in NO_SERVER for r in dns), c.summary(dns)
        assert {r["address"] for r in c.select(check="dns", path="endpoint")} == \
            {bed.dns_ip(i) for i in range(1, bed.dns_replicas + 1)}
        # One finding: cluster DNS, every failing check explained by it.
        assert c.found() == [("dns_unreachable", f"Service kube-system/kube-dns ({KUBE_DNS_IP})")], c.findings
        assert c.findings[0]["evidence"]["failing_checks"] == len(c.failing())
        # TCP to the web Services is unaffected: DNS is the culprit, not the data plane.
        assert all(r["passing"] for r in c.select(service="web", check="tcp"))
    finally:
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_one_of_two_coredns_replicas_dead(bed: TestBed, shop: Shop) -> None:
    dead, alive = bed.dns_ip(2), bed.dns_ip(1)
    try:
        bed.stop_coredns(2)
        c = run_check(bed, shop)
        assert c.rc == 1
        at_dead = c.select(check="dns", path="endpoint", address=dead)
        at_alive = c.select(check="dns", path="endpoint", address=alive)
        assert at_dead and all(r["result"] in NO_SERVER for r in at_dead), c.summary(at_dead)
        assert at_alive and all(r["result"] == "ok" for r in at_alive), c.summary(at_alive)
        assert [r["result"] for r in c.select(service="kube-dns", check="tcp", address=dead)] == \
            ["refused"]
        # whatever fails on the resolver/ClusterIP paths is a missing server (kube-proxy sends
        # about half the queries to the dead replica), never a wrong answer
        assert {r["result"] for r in c.failing() if r["check"] == "dns"} <= NO_SERVER
        # ... and all of it is that replica's doing: one finding naming its pod
        assert c.found() == [("dns_replica", f"pod kube-system/coredns-2 ({dead})")], c.findings
        assert c.findings[0]["evidence"]["failing_checks"] == len(c.failing())
    finally:
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_one_replica_gives_a_wrong_answer(bed: TestBed, shop: Shop) -> None:
    liar, honest = bed.dns_ip(2), bed.dns_ip(1)
    name = "kubernetes.default.svc.cluster.local"
    try:
        bed.start_coredns(2, extra=f"hosts {{\n  198.19.1.254 {name}\n  fallthrough\n}}")
        c = run_check(bed, shop)
        wrong = c.select(service="kubernetes", check="dns", path="endpoint", address=liar,
                         qtype="A")
        assert [r["result"] for r in wrong] == ["wrong_answer"], c.summary(wrong)
        assert wrong[0]["answer"] == ["198.19.1.254"]
        assert all(r["result"] == "ok" for r in c.select(check="dns", path="endpoint",
                                                         address=honest))
        assert c.found() == [("dns_replica", f"pod kube-system/coredns-2 ({liar})")], c.findings
        assert "answers differently" in c.findings[0]["summary"]
    finally:
        bed.start_coredns(2)
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_wrong_answer_for_one_name(bed: TestBed, shop: Shop) -> None:
    fqdn = f"web.{shop.ns}.svc.cluster.local"
    try:
        for r in range(1, bed.dns_replicas + 1):
            bed.start_coredns(r, extra=f"hosts {{\n  198.19.1.250 {fqdn}\n  fallthrough\n}}")
        c = run_check(bed, shop)
        assert c.rc == 1
        web_a = c.select(service="web", check="dns", qtype="A", path="resolver")
        assert {r["form"] for r in web_a} == FORMS
        assert all(r["result"] == "wrong_answer" and r["answer"] == ["198.19.1.250"]
                   for r in web_a), c.summary(web_a)
        # Only that name is wrong.
        others = [r for r in c.failing() if not (r["service"] == "web" and r["qtype"] == "A")]
        assert not others, c.summary(others)
        # Every replica agrees on the wrong record (the sample asks them): cluster DNS's view.
        assert c.select(service="web", check="dns", path="endpoint")
        assert c.found() == [("service_records", f"Service {shop.ns}/web")], c.findings
        assert not c.findings[0]["alternatives"]
    finally:
        for r in range(1, bed.dns_replicas + 1):
            bed.start_coredns(r)
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_backend_killed(bed: TestBed, shop: Shop) -> None:
    dead = shop.web[1]
    try:
        bed.stop_backend(dead.name)
        c = run_check(bed, shop)
        assert c.rc == 1
        ep = c.select(service="web", check="tcp", path="endpoint", address=dead.ip)
        assert sorted((r["port"], r["result"]) for r in ep) == [(8080, "refused"), (8443, "refused")]
        alive = c.select(service="web", check="tcp", path="endpoint", address=shop.web[0].ip)
        assert alive and all(r["result"] == "ok" for r in alive)
        assert all(r["passing"] for r in c.select(check="dns")), c.summary()
        # The ClusterIP may land on either endpoint: refused or ok, nothing else.
        assert {r["result"] for r in c.select(service="web", check="tcp", path="cluster_ip")} <= {"ok", "refused"}
        assert c.found() == [("endpoint_down", f"pod {shop.ns}/{dead.name} ({dead.ip})")], c.findings
    finally:
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_kube_proxy_rules_flushed_on_one_node(bed: TestBed, shop: Shop) -> None:
    try:
        bed.flush_proxy_rules("node2")
        # Without kube-proxy rules the kubernetes ClusterIP is unreachable from node2 too, so
        # this agent reads the API at the API server's own address.
        c = run_check(bed, shop, "node2", source="api-direct")
        assert c.rc == 1
        cluster_ip_tcp = c.select(check="tcp", path="cluster_ip")
        assert {r["service"] for r in cluster_ip_tcp} >= {"web", "kubernetes", "kube-dns"}
        assert all(r["result"] == "timeout" for r in cluster_ip_tcp), c.summary(cluster_ip_tcp)
        # endpoints (TCP and each CoreDNS replica) are fine: the node's Service plumbing is broken
        endpoint = c.select(path="endpoint")
        assert endpoint and all(r["passing"] for r in endpoint), c.summary(endpoint)
        # DNS through the kube-dns ClusterIP fails too, as it would for pods on that node
        assert all(r["result"] == "timeout" for r in c.select(check="dns", path="cluster_ip"))
        # One finding: this node's Service proxy, which explains every failing check.
        assert c.found() == [("service_proxy", "node node2")], c.findings
        assert c.findings[0]["evidence"]["failing_checks"] == len(c.failing())
        # the other node is healthy
        assert_healthy(bed, shop, "node1")
    finally:
        shop.restore(bed)
    assert_healthy(bed, shop, "node2")


def test_all_endpoints_removed_is_not_an_alarm(bed: TestBed, shop: Shop) -> None:
    try:
        bed.set_endpoints(shop.ns, "web", [], ports=WEB_SLICE_PORTS)
        bed.set_endpoints(shop.ns, "db", [], ports=DB_SLICE_PORTS)
        for qtype in ("A", "AAAA"):  # TTL + cache
            bed.wait_dns(f"db.{shop.ns}.svc.cluster.local.", "NXDOMAIN", qtype)
        # SRV answers are cached on their own: wait for them too, or a stale SRV is reported
        bed.wait_dns(f"_pg._tcp.db.{shop.ns}.svc.cluster.local.", "NXDOMAIN", "SRV")
        bed.wait_proxy_rule("node1", shop.web_ip)
        eventually(lambda: f"{shop.web[0].ip}:8080" not in bed.proxy_rules("node1"),
                   what="kube-proxy drops the endpoints")
        c = run_check(bed, shop)
        assert c.rc == 0, c.summary()
        assert c.found() == [], c.findings  # scaled to zero: expected, nothing to look at
        web_tcp = c.select(service="web", check="tcp")
        assert sorted((r["path"], r["port"], r["result"]) for r in web_tcp) == [
            ("cluster_ip", 80, "no_endpoints"), ("cluster_ip", 443, "no_endpoints")]
        assert all(r["passing"] for r in web_tcp)
        # the ClusterIP still resolves; the headless name is expected to be NXDOMAIN now
        assert all(r["answer"] == [shop.web_ip]
                   for r in c.select(service="web", check="dns", qtype="A"))
        assert not c.select(service="db", check="tcp")
    finally:
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_terminating_endpoint_during_rollout_is_not_an_alarm(bed: TestBed, shop: Shop) -> None:
    old = shop.web[1]
    try:
        eps = [{"ip": shop.web[0].ip, "target": shop.web[0].name},
               {"ip": old.ip, "target": old.name, "ready": False, "serving": True,
                "terminating": True}]
        bed.set_endpoints(shop.ns, "web", eps, ports=WEB_SLICE_PORTS)
        bed.stop_backend(old.name)  # the old pod is going away
        bed.wait_proxy_rule("node1", shop.web_ip, endpoints=[shop.web[0]])
        eventually(lambda: f"{old.ip}:8080" not in bed.proxy_rules("node1"), timeout=30,
                   what="kube-proxy drops the terminating endpoint")
        c = run_check(bed, shop)
        assert c.rc == 0, c.summary()
        assert c.found() == [], c.findings  # a rollout: nothing to look at
        assert not c.select(check="tcp", address=old.ip)
    finally:
        shop.restore(bed)
    assert_healthy(bed, shop)


def test_metrics_show_the_failing_path(bed: TestBed, shop: Shop) -> None:
    """`svcprobe run` in node1: a killed backend shows up in /metrics, and clears."""
    node = bed.node("node1")
    inv = bed.workdir / "inventory-run.yaml"
    inv.write_text(bed.inventory_yaml())
    env = {"SVCPROBE_SELECTION_NAMESPACES": shop.ns, "SVCPROBE_SHARDING_REPLICAS": "0",
           "SVCPROBE_DNS_GRACE_SECONDS": "0", "SVCPROBE_SCHEDULER_INTERVAL_SECONDS": "2",
           "SVCPROBE_TCP_ENDPOINT_INTERVAL_SECONDS": "0",
           "SVCPROBE_INVENTORY_RELOAD_SECONDS": "1", "SVCPROBE_LISTEN": f"{node.ip}:9142",
           "SVCPROBE_SHUTDOWN_DRAIN_SECONDS": "0"}
    with open(bed.logs / "svcprobe-run.log", "wb") as log:
        proc = bed.node_popen("node1", ["env", *(f"{k}={v}" for k, v in env.items()),
                                        sys.executable, "-m", "agent", "run", "--inventory",
                                        str(inv)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{node.ip}:9142/metrics"

    def samples() -> list[tuple[str, dict[str, str], float]]:
        got = bed.probe("node1", "http", url)
        if got.get("status") != 200:
            return []
        return [(s.name, s.labels, s.value)
                for fam in text_string_to_metric_families(got["body"]) for s in fam.samples]

    def failing_series() -> list[dict[str, str]]:
        return [labels for name, labels, value in samples()
                if name == "svcprobe_service_failing" and value == 1]

    dead = shop.web[1]
    want = {"namespace": shop.ns, "service": "web", "check": "tcp", "path": "endpoint",
            "result": "refused"}
    try:
        eventually(lambda: any(n == "svcprobe_tcp_connects_total" for n, _, _ in samples()),
                   timeout=60, what="agent serving metrics after a sweep")
        bed.stop_backend(dead.name)
        eventually(lambda: want in failing_series(), timeout=30,
                   what=f"svcprobe_service_failing{want} == 1")
        assert any(n == "svcprobe_tcp_connects_total" and v > 0 and
                   lab == {"target": "endpoint", "family": "ipv4", "result": "refused"}
                   for n, lab, v in samples())
        bed.start_backend(dead.name)
        eventually(lambda: not failing_series(), timeout=30,
                   what="no failing series after recovery")
    finally:
        stop(proc)
        shop.restore(bed)


@dataclass
class Agents:
    """`svcprobe run` on every node, Prometheus (Debian's) scraping them from node1."""

    urls: dict[str, str]  # node -> agent base URL
    prometheus: str

    def diagnose(self, bed: TestBed, *source: str) -> tuple[int, dict[str, Any]]:
        cp = bed.node_exec("node1", [sys.executable, "-m", "agent", "diagnose", "--output", "json", *source],
                           timeout=90)
        # 2: no source usable yet (Prometheus has not scraped the agents): the caller waits
        assert cp.returncode in (0, 1, 2), f"svcprobe diagnose exited {cp.returncode}: {cp.stderr}"
        return cp.returncode, json.loads(cp.stdout) if cp.returncode != 2 else {"verdicts": [], "silent": [cp.stderr]}

    def wait_findings(self, bed: TestBed, node: str, want: list[tuple[str, str]], what: str) -> None:
        seen: list[Any] = []

        def probe() -> bool:
            seen[:] = [self.findings(bed, node)]
            return seen[0] == want

        try:
            eventually(probe, timeout=120, what=what)
        except AssertionError:
            pytest.fail(f"{what}: want {want}, last seen {seen[0]}")

    def findings(self, bed: TestBed, node: str) -> list[tuple[str, str]]:
        got = bed.probe("node1", "http", f"{self.urls[node]}/api/v1/findings")
        if got.get("status") != 200:
            return [("(no answer)", str(got.get("status")))]
        doc = json.loads(got["body"])
        return [("(no sweep)", "")] if doc["sweep"] is None else \
            [(f["kind"], f["suspect"]["text"]) for f in doc["findings"]]


@pytest.fixture
def agents(bed: TestBed, shop: Shop, tmp_path: Any) -> Iterator[Agents]:
    from tests.support.chart import tool

    procs: list[subprocess.Popen[bytes]] = []
    urls = {}
    try:
        for node in bed.nodes:
            ip = bed.node(node).ip
            urls[node] = f"http://{ip}:9142"
            env = {"SVCPROBE_SELECTION_NAMESPACES": shop.ns, "SVCPROBE_SHARDING_REPLICAS": "0",
                   "SVCPROBE_DNS_GRACE_SECONDS": "0", "SVCPROBE_SCHEDULER_INTERVAL_SECONDS": "2",
                   "SVCPROBE_TCP_ENDPOINT_INTERVAL_SECONDS": "0",  # a killed backend shows at once
                   "SVCPROBE_LISTEN": f"{ip}:9142", "SVCPROBE_SHUTDOWN_DRAIN_SECONDS": "0",
                   "SVCPROBE_NODE_NAME": node,
                   # the API server's own address: an agent whose node loses its kube-proxy rules
                   # must still see the cluster, or it could say nothing about that node
                   "SVCPROBE_KUBERNETES_KUBECONFIG": shop.creds.direct}
            with open(bed.logs / f"svcprobe-run-{node}.log", "wb") as log:
                procs.append(bed.node_popen(node, ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable,
                                                   "-m", "agent", "run"], stdout=log, stderr=subprocess.STDOUT))
        prom_ip = bed.node("node1").ip
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                  "scrape_configs": [{"job_name": "svcprobe", "honor_labels": True, "static_configs": [
                      {"targets": [u.split("//")[1]], "labels": {"node": n}} for n, u in urls.items()]}]}
        (tmp_path / "prometheus.yml").write_text(json.dumps(config))
        with open(bed.logs / "prometheus-diagnose.log", "wb") as log:
            procs.append(bed.node_popen("node1", [
                tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={prom_ip}:9090",
                "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT))
        a = Agents(urls, f"http://{prom_ip}:9090")
        for node in bed.nodes:
            eventually(lambda node=node: a.findings(bed, node) == [], timeout=90,
                       what=f"the agent on {node} sweeping with no finding")
        yield a
    finally:
        for p in reversed(procs):
            stop(p)


@dataclass
class Fault:
    """A fault injected while `svcprobe run` agents watch: what each node's agent must find, and
    the cluster verdict `svcprobe diagnose` must give (kind, suspect or None for the node
    itself, reporting nodes)."""

    name: str
    inject: Callable[[TestBed, Shop], None]
    per_node: Callable[[TestBed, Shop], dict[str, list[tuple[str, str]]]]
    verdicts: Callable[[TestBed, Shop], set[tuple[str, str | None, tuple[str, ...]]]]


def _dns_suspect() -> str:
    return f"Service kube-system/kube-dns ({KUBE_DNS_IP})"


def _everywhere(bed: TestBed, found: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    return {n: found for n in bed.nodes}


def _stop_all_coredns(bed: TestBed, shop: Shop) -> None:
    for r in range(1, bed.dns_replicas + 1):
        bed.stop_coredns(r)


def _lie_about_web(replicas: tuple[int, ...]) -> Callable[[TestBed, Shop], None]:
    def inject(bed: TestBed, shop: Shop) -> None:
        for r in replicas:
            bed.start_coredns(r, extra=f"hosts {{\n  198.19.1.250 web.{shop.ns}.svc.cluster.local\n  fallthrough\n}}")
    return inject


def _no_endpoints(bed: TestBed, shop: Shop) -> None:
    bed.set_endpoints(shop.ns, "web", [], ports=WEB_SLICE_PORTS)
    bed.set_endpoints(shop.ns, "db", [], ports=DB_SLICE_PORTS)


def _terminating(bed: TestBed, shop: Shop) -> None:
    old = shop.web[1]
    bed.set_endpoints(shop.ns, "web", [{"ip": shop.web[0].ip, "target": shop.web[0].name},
                                       {"ip": old.ip, "target": old.name, "ready": False, "serving": True,
                                        "terminating": True}], ports=WEB_SLICE_PORTS)
    bed.stop_backend(old.name)


FAULTS = [
    Fault("healthy", lambda bed, shop: None, lambda bed, shop: _everywhere(bed, []), lambda bed, shop: set()),
    Fault("CoreDNS stopped", _stop_all_coredns,
          lambda bed, shop: _everywhere(bed, [("dns_unreachable", _dns_suspect())]),
          lambda bed, shop: {("dns_unreachable", _dns_suspect(), tuple(bed.nodes))}),
    Fault("kube-dns without a ready endpoint (CoreDNS running)",
          lambda bed, shop: bed.set_kube_dns_ready({r: False for r in range(1, bed.dns_replicas + 1)}),
          lambda bed, shop: _everywhere(bed, [("dns_unreachable", _dns_suspect())]),
          lambda bed, shop: {("dns_unreachable", _dns_suspect(), tuple(bed.nodes))}),
    Fault("one CoreDNS replica stopped", lambda bed, shop: bed.stop_coredns(2),
          lambda bed, shop: _everywhere(bed, [("dns_replica", f"pod kube-system/coredns-2 ({bed.dns_ip(2)})")]),
          lambda bed, shop: {("dns_replica", f"pod kube-system/coredns-2 ({bed.dns_ip(2)})", tuple(bed.nodes))}),
    Fault("one CoreDNS replica stale for a non-canary Service", _lie_about_web((2,)),
          lambda bed, shop: _everywhere(bed, [("dns_replica", f"pod kube-system/coredns-2 ({bed.dns_ip(2)})")]),
          lambda bed, shop: {("dns_replica", f"pod kube-system/coredns-2 ({bed.dns_ip(2)})", tuple(bed.nodes))}),
    Fault("a wrong record on every replica", _lie_about_web((1, 2)),
          lambda bed, shop: _everywhere(bed, [("service_records", f"Service {shop.ns}/web")]),
          lambda bed, shop: {("service_records", f"Service {shop.ns}/web", tuple(bed.nodes))}),
    Fault("a backend killed", lambda bed, shop: bed.stop_backend(shop.web[1].name),
          lambda bed, shop: _everywhere(bed, [("endpoint_down", f"pod {shop.ns}/{shop.web[1].name} "
                                                                f"({shop.web[1].ip})")]),
          lambda bed, shop: {("endpoint_down", f"pod {shop.ns}/{shop.web[1].name} ({shop.web[1].ip})",
                              tuple(bed.nodes))}),
    Fault("kube-proxy rules flushed on node2", lambda bed, shop: bed.flush_proxy_rules("node2"),
          lambda bed, shop: {"node1": [], "node2": [("service_proxy", "node node2")]},
          lambda bed, shop: {("service_proxy", None, ("node2",))}),
    Fault("all endpoints removed", _no_endpoints, lambda bed, shop: _everywhere(bed, []), lambda bed, shop: set()),
    Fault("an endpoint terminating (rollout)", _terminating,
          lambda bed, shop: _everywhere(bed, []), lambda bed, shop: set()),
]


def test_each_fault_gives_its_finding_per_node_and_its_cluster_verdict(bed: TestBed, shop: Shop,
                                                                        agents: Agents) -> None:
    """With `svcprobe run` on every node: each fault yields exactly the expected findings on
    each node, and `svcprobe diagnose` the expected verdict, from Debian's Prometheus and from
    the agents directly; healing clears them. The table of what was seen is written to the
    temporary directory (svcprobe-findings-table.md)."""
    sources = {"prometheus": ("--prometheus", agents.prometheus),
               "agents": tuple(a for u in agents.urls.values() for a in ("--agent", u))}
    n = len(bed.nodes)

    def verdicts(source: str) -> tuple[int, set[tuple[str, str | None, tuple[str, ...]]], list[str]]:
        """Exit code, (kind, suspect, nodes) of each verdict (all of n nodes), agents not heard from."""
        rc, doc = agents.diagnose(bed, *sources[source])
        assert all(v["of_nodes"] == n for v in doc["verdicts"]), doc
        return rc, {(v["kind"], v["suspect"], tuple(v["nodes"])) for v in doc["verdicts"]}, doc["silent"]

    table = ["| fault | findings per node | cluster verdict (diagnose) |", "|---|---|---|"]
    for fault in FAULTS:
        try:
            fault.inject(bed, shop)
            want_nodes = fault.per_node(bed, shop)
            for node, want in want_nodes.items():
                agents.wait_findings(bed, node, want, f"{fault.name}: the findings of {node}'s agent")
            cluster = fault.verdicts(bed, shop)
            texts: list[str] = []
            for source in sources:
                eventually(lambda source=source, cluster=cluster: verdicts(source) == (
                    (1 if cluster else 0), cluster, []), timeout=90,
                    what=f"{fault.name}: {source} verdicts == {cluster}")
                _, doc = agents.diagnose(bed, *sources[source])
                texts = [v["verdict"] for v in doc["verdicts"]]
            seen = "; ".join(f"{node}: {', '.join(f'{k} {s}' for k, s in found) or 'none'}"
                             for node, found in want_nodes.items())
            table.append(f"| {fault.name} | {seen} | {'; '.join(texts) or 'none (exit 0)'} |")
        finally:
            if fault.name != "healthy":
                for r in range(1, bed.dns_replicas + 1):
                    bed.start_coredns(r)
                bed.set_kube_dns_ready({r: True for r in range(1, bed.dns_replicas + 1)})
                shop.restore(bed)
        for node in bed.nodes:
            agents.wait_findings(bed, node, [], f"after {fault.name}: the findings on {node} once healed")
    # Kept after the bed is gone: the table the note asks for.
    (Path(tempfile.gettempdir()) / "svcprobe-findings-table.md").write_text("\n".join(table) + "\n")
