"""The test bed itself, checked without the agent: if these fail, agent e2e results mean nothing."""
from __future__ import annotations

import json

import pytest

from tests.testbed import netns
from tests.testbed.bed import CP_IP, KUBE_DNS_IP, KUBERNETES_IP, TestBed, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FQDN = "svc.cluster.local"


def a_records(answer: dict) -> set[str]:
    return {rr["data"] for rr in answer.get("answers", []) if rr["type"] == "A"}


def test_api_kubernetes_service_and_version(bed: TestBed) -> None:
    version = json.loads(bed.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    svc = bed.get_json("service", "-n", "default", "kubernetes")
    assert svc["spec"]["clusterIP"] == KUBERNETES_IP
    # The apiserver maintains the kubernetes Service's EndpointSlice itself (no controller here).
    slices = bed.get_json("endpointslices", "-n", "default",
                          "-l", "kubernetes.io/service-name=kubernetes")
    addresses = {a for s in slices["items"] for e in s["endpoints"] for a in e["addresses"]}
    assert addresses == {CP_IP}


def test_service_account_token_and_rbac(bed: TestBed, unique_ns: str) -> None:
    token = bed.create_token(unique_ns, "tester")
    kc = bed.workdir / f"token-{unique_ns}.kubeconfig"
    bed.write_kubeconfig(kc, token=token)
    who = netns.run_in(bed.cp_netns, [bed.binary("kubectl"), f"--kubeconfig={kc}", "auth", "whoami",
                                      "-o", "json"])
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == \
        f"system:serviceaccount:{unique_ns}:tester"
    # RBAC is on: a fresh ServiceAccount may not list Secrets.
    denied = netns.run_in(bed.cp_netns, [bed.binary("kubectl"), f"--kubeconfig={kc}", "get",
                                         "secrets", "-n", unique_ns], check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_clusterip_dns_and_tcp_through_kube_proxy(bed: TestBed, unique_ns: str) -> None:
    be = bed.add_backend(f"web-{unique_ns[-5:]}", ports=[8080])
    svc = bed.create_service(unique_ns, "web", ports=[("http", 80, "TCP", 8080)])
    bed.set_endpoints(unique_ns, "web", [be], ports=[("http", 8080, "TCP")])
    cip = svc["spec"]["clusterIP"]
    assert cip.startswith("198.18.")

    # FQDN through the kube-dns ClusterIP (kube-proxy -> one of the CoreDNS replicas).
    ans = eventually(lambda: a_records(bed.probe("node1", "dns", f"web.{unique_ns}.{FQDN}.",
                                                 "--server", KUBE_DNS_IP)),
                     what="A record of the new Service")
    assert ans == {cip}
    # Each CoreDNS replica directly gives the same answer.
    for r in range(1, bed.dns_replicas + 1):
        assert a_records(bed.probe("node1", "dns", f"web.{unique_ns}.{FQDN}.",
                                   "--server", bed.dns_ip(r))) == {cip}

    # TCP to the ClusterIP reaches the backend through kube-proxy, on every node.
    for node in bed.nodes:
        bed.wait_proxy_rule(node, cip, endpoints=[be])
        res = bed.probe(node, "tcp", cip, "80")
        assert res["result"] == "ok", res
        assert res["banner"].startswith(f"svcprobe-testbed {be.name} {be.ip}:8080")
    # and the endpoint directly
    assert bed.probe("node1", "tcp", be.ip, "8080")["result"] == "ok"


def test_pod_resolver_search_list(bed: TestBed, unique_ns: str) -> None:
    """The node namespaces carry a pod's resolv.conf (namespace default, ndots:5)."""
    res = bed.probe("node1", "resolve", "kubernetes")
    assert res["result"] == "ok", res
    assert res["qname"] == f"kubernetes.default.{FQDN}."
    assert a_records(res) == {KUBERNETES_IP}
    assert res["nameservers"] == [KUBE_DNS_IP]
    # glibc too
    assert bed.probe("node1", "getaddrinfo", "kubernetes.default")["addresses"] == [KUBERNETES_IP]
    # A short name of another namespace does not resolve; svc.ns does.
    bed.create_service(unique_ns, "other", ports=[("http", 80, "TCP")])
    assert bed.probe("node1", "resolve", "other")["result"] == "nxdomain"
    res = eventually(lambda: (r := bed.probe("node1", "resolve", f"other.{unique_ns}"))
                     and r["result"] == "ok" and r)
    assert res["qname"] == f"other.{unique_ns}.{FQDN}."
    # and TCP to the kubernetes Service (apiserver behind kube-proxy) works
    assert bed.probe("node1", "tcp", KUBERNETES_IP, "443")["result"] == "ok"


def test_headless_service_answers_ready_endpoints(bed: TestBed, unique_ns: str) -> None:
    bed.create_service(unique_ns, "db", headless=True, ports=[("pg", 5432, "TCP")])
    eps = [{"ip": "198.19.1.200", "hostname": "db-0"},
           {"ip": "198.19.1.201", "hostname": "db-1"},
           {"ip": "198.19.1.202", "hostname": "db-2", "ready": False}]
    bed.set_endpoints(unique_ns, "db", eps, ports=[("pg", 5432, "TCP")])
    name = f"db.{unique_ns}.{FQDN}."
    got = eventually(lambda: a_records(bed.probe("node1", "dns", name, "--server", KUBE_DNS_IP)))
    assert got == {"198.19.1.200", "198.19.1.201"}
    assert a_records(bed.probe("node1", "dns", f"db-1.{name}", "--server", KUBE_DNS_IP)) == \
        {"198.19.1.201"}
    srv = bed.probe("node1", "dns", f"_pg._tcp.{name}", "SRV", "--server", KUBE_DNS_IP)
    targets = {rr["data"].split()[-1] for rr in srv["answers"] if rr["type"] == "SRV"}
    assert targets == {f"db-0.{name}", f"db-1.{name}"}


def test_externalname_gives_cname(bed: TestBed, unique_ns: str) -> None:
    bed.create_service(unique_ns, "ext", external_name="backend.example.invalid", ports=[])
    res = eventually(lambda: (r := bed.probe("node1", "dns", f"ext.{unique_ns}.{FQDN}.",
                                             "CNAME", "--server", KUBE_DNS_IP))
                     and r.get("answers") and r)
    assert [rr["data"] for rr in res["answers"] if rr["type"] == "CNAME"] == \
        ["backend.example.invalid."]


def answers_eventually(bed: TestBed, name: str, server: str, want: set[str]) -> None:
    """Right after a (re)start, and on a loaded machine, one query may time out: retry briefly."""
    eventually(lambda: a_records(bed.probe("node1", "dns", name, "--server", server)) == want,
               timeout=20, what=f"{name} = {want} at {server}")


def test_coredns_replica_stop_start(bed: TestBed) -> None:
    name = f"kubernetes.default.{FQDN}."
    bed.stop_coredns(2)
    try:
        assert bed.probe("node1", "dns", name, "--server", bed.dns_ip(2),
                         "--timeout", "1")["result"] in ("timeout", "error")
        answers_eventually(bed, name, bed.dns_ip(1), {KUBERNETES_IP})
    finally:
        bed.start_coredns(2)
    answers_eventually(bed, name, bed.dns_ip(2), {KUBERNETES_IP})


def test_coredns_extra_config_wrong_answer(bed: TestBed) -> None:
    name = f"kubernetes.default.{FQDN}"
    bed.start_coredns(1, extra=f"hosts {{\n  198.19.1.254 {name}\n  fallthrough\n}}")
    try:
        answers_eventually(bed, name + ".", bed.dns_ip(1), {"198.19.1.254"})
        answers_eventually(bed, name + ".", bed.dns_ip(2), {KUBERNETES_IP})
    finally:
        bed.start_coredns(1)
    answers_eventually(bed, name + ".", bed.dns_ip(1), {KUBERNETES_IP})


def test_flushed_kube_proxy_rules_break_only_that_node(bed: TestBed, unique_ns: str) -> None:
    be = bed.add_backend(f"fl-{unique_ns[-5:]}", ports=[8080])
    cip = bed.create_service(unique_ns, "web", ports=[("http", 80, "TCP")])["spec"]["clusterIP"]
    bed.set_endpoints(unique_ns, "web", [be])
    for node in bed.nodes:
        bed.wait_proxy_rule(node, cip, endpoints=[be])
    bed.flush_proxy_rules("node2")
    try:
        assert bed.probe("node2", "tcp", cip, "80", "--timeout", "1")["result"] == "timeout"
        assert bed.probe("node2", "tcp", be.ip, "8080")["result"] == "ok"
        assert bed.probe("node1", "tcp", cip, "80")["result"] == "ok"
    finally:
        bed.start_kube_proxy("node2")
    bed.wait_proxy_rule("node2", cip, endpoints=[be])
    assert bed.probe("node2", "tcp", cip, "80")["result"] == "ok"


def test_backend_stop_and_no_endpoints(bed: TestBed, unique_ns: str) -> None:
    be = bed.add_backend(f"st-{unique_ns[-5:]}", ports=[8080])
    cip = bed.create_service(unique_ns, "web", ports=[("http", 80, "TCP")])["spec"]["clusterIP"]
    bed.set_endpoints(unique_ns, "web", [be])
    bed.wait_proxy_rule("node1", cip, endpoints=[be])
    bed.stop_backend(be.name)
    assert bed.probe("node1", "tcp", be.ip, "8080")["result"] == "refused"
    assert bed.probe("node1", "tcp", cip, "80")["result"] == "refused"
    bed.start_backend(be.name)
    assert bed.probe("node1", "tcp", cip, "80")["result"] == "ok"
    # All endpoints removed: kube-proxy rejects connections to the ClusterIP.
    bed.set_endpoints(unique_ns, "web", [])
    eventually(lambda: bed.probe("node1", "tcp", cip, "80", "--timeout", "1")["result"] == "refused",
               what="ClusterIP without endpoints refuses")


def test_apiserver_restart(bed: TestBed, unique_ns: str) -> None:
    bed.restart_apiserver()
    # kube-proxy and CoreDNS re-establish their watches: a Service made after the restart works.
    be = bed.add_backend(f"rs-{unique_ns[-5:]}", ports=[8080])
    cip = bed.create_service(unique_ns, "after", ports=[("http", 80, "TCP")])["spec"]["clusterIP"]
    bed.set_endpoints(unique_ns, "after", [be])
    bed.wait_proxy_rule("node1", cip, endpoints=[be], timeout=60)
    assert bed.probe("node1", "tcp", cip, "80")["result"] == "ok"
    got = eventually(lambda: a_records(bed.probe("node1", "dns", f"after.{unique_ns}.{FQDN}.",
                                                 "--server", KUBE_DNS_IP)), timeout=60)
    assert got == {cip}
