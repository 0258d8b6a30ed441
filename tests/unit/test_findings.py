"""Findings from synthetic results: each kind told apart by comparing paths, forms and
Services; one finding per fault; none for what is expected (rollouts, converging changes,
Services without ready endpoints)."""

from __future__ import annotations

import dataclasses

import pytest

from agent.checks import CheckResult, DnsCheck, DnsExpectation, DnsResult, Expect, TcpCheck, TcpResult
from agent.findings import FindingTracker, Kind, Severity, Topology, analyze
from agent.findings.cluster import Reported, merge
from agent.findings.kinds import Finding

ZONE = "cluster.local"
VIP = "198.18.0.10"  # kube-dns ClusterIP
REPLICAS = {"198.19.1.2": "kube-system/coredns-a", "198.19.1.3": "kube-system/coredns-b"}
TOPO = Topology(dns_service=("kube-system", "kube-dns"), dns_service_ips=frozenset({VIP}),
                replica_pods=REPLICAS, ready_replicas=2,
                pod_of=lambda ns, svc, addr: f"{ns}/{svc}-{addr.rsplit('.', 1)[1]}", node="node-7")
SERVICES = [("default", "kubernetes", "198.18.0.1"), ("kube-system", "kube-dns", VIP),
            ("shop", "web", "198.18.0.20"), ("shop", "db", "198.18.0.21"), ("shop", "cart", "198.18.0.22")]
ENDPOINTS = {"web": ["198.19.2.1", "198.19.2.2"], "db": ["198.19.2.3"], "cart": ["198.19.2.4"],
             "kubernetes": ["198.19.0.1"], "kube-dns": list(REPLICAS)}
FORMS = ("short", "namespace", "svc", "fqdn")


def dns(ns: str, svc: str, ip: str, *, form: str = "fqdn", path: str = "resolver", server: str = VIP,
        result: DnsResult = DnsResult.OK, answer: tuple[str, ...] | None = None, seconds: float = 0.002,
        ready: bool = True, converging: bool = False) -> CheckResult:
    names = {"short": svc, "namespace": f"{svc}.{ns}", "svc": f"{svc}.{ns}.svc", "fqdn": f"{svc}.{ns}.svc.{ZONE}."}
    check = DnsCheck(ns, svc, form, "A", path, names[form], (f"{ns}.svc.{ZONE}",), 5, ((server, 53),),
                     DnsExpectation(Expect.ANSWER, frozenset({ip})), server_ready=ready)
    if answer is None:
        answer = (ip,) if result is DnsResult.OK else ()
    return CheckResult(check, result, seconds, 1000.0, answer=answer, converging=converging)


def tcp(ns: str, svc: str, address: str, *, path: str = "endpoint", port: int = 80,
        result: TcpResult = TcpResult.OK, converging: bool = False) -> CheckResult:
    return CheckResult(TcpCheck(ns, svc, path, address, port, "ipv4", "http"), result, 0.001, 1000.0,
                       converging=converging)


def healthy() -> list[CheckResult]:
    """One sweep of a healthy node: every form on the resolver path, the canaries over the
    Service IP and each replica, TCP to every Service IP and endpoint."""
    out: list[CheckResult] = []
    for ns, svc, ip in SERVICES:
        out += [dns(ns, svc, ip, form=f) for f in FORMS]
        if ns != "shop":  # canaries: every path
            out.append(dns(ns, svc, ip, path="cluster_ip"))
            out += [dns(ns, svc, ip, path="endpoint", server=r) for r in REPLICAS]
        out.append(tcp(ns, svc, ip, path="cluster_ip"))
        out += [tcp(ns, svc, a) for a in ENDPOINTS[svc]]
    return out


def change(results: list[CheckResult], when: object, **new: object) -> list[CheckResult]:
    """Results with those matching `when(result)` replaced (dataclasses.replace of the result)."""
    return [dataclasses.replace(r, **new) if when(r) else r for r in results]  # type: ignore[operator]


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.kind.value, str(f.suspect)) for f in findings]


def failing(results: list[CheckResult]) -> int:
    return sum(not r.passing for r in results)


def test_healthy_node_has_no_finding() -> None:
    assert analyze(healthy(), TOPO) == []


def test_converging_changes_rollouts_and_empty_services_give_no_finding() -> None:
    rs = healthy()
    # a Service that just changed: differing answers within the grace window
    rs = change(rs, lambda r: r.check.service == "web" and r.check.kind == "dns",
                result=DnsResult.WRONG_ANSWER, answer=("198.19.9.9",), converging=True)
    # a Service scaled to zero: its IP has no endpoint to connect to (expected)
    rs = change(rs, lambda r: r.check.service == "db" and r.check.path == "cluster_ip",
                result=TcpResult.NO_ENDPOINTS)
    rs = [r for r in rs if not (r.check.service == "db" and r.check.path == "endpoint")]
    # a replica that is not ready yet (CoreDNS rollout): asked, not judged
    rs.append(dns("default", "kubernetes", "198.18.0.1", path="endpoint", server="198.19.1.9",
                  result=DnsResult.TIMEOUT, ready=False))
    assert analyze(rs, TOPO) == []


def test_cluster_dns_down_is_one_finding() -> None:
    rs = change(healthy(), lambda r: r.check.kind == "dns", result=DnsResult.TIMEOUT)
    rs = change(rs, lambda r: r.check.service == "kube-dns" and r.check.kind == "tcp", result=TcpResult.REFUSED)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("dns_unreachable", f"Service kube-system/kube-dns ({VIP})")]
    assert found[0].severity is Severity.CRITICAL and found[0].checks == failing(rs)
    assert found[0].alternatives  # from one node, its own network to cluster DNS fits too


def test_cluster_dns_without_ready_replicas_says_whether_its_pods_answer() -> None:
    rs = change(healthy(), lambda r: r.check.kind == "dns" and r.check.path != "endpoint", result=DnsResult.REFUSED)
    rs = [r for r in rs if r.check.path != "endpoint" or r.check.kind == "tcp"]
    rs.append(dns("default", "kubernetes", "198.18.0.1", path="endpoint", server="198.19.1.2", ready=False))
    rs = [r for r in rs if not (r.check.service == "kube-dns" and r.check.kind == "tcp")]
    found = analyze(rs, dataclasses.replace(TOPO, ready_replicas=0))
    assert kinds(found) == [("dns_unreachable", f"Service kube-system/kube-dns ({VIP})")]
    assert "no ready endpoint" in found[0].summary
    assert "kube-system/coredns-a (198.19.1.2) do answer" in found[0].summary


def test_dead_replica_explains_the_service_ip_lookups_that_reached_it() -> None:
    dead = "198.19.1.3"
    rs = change(healthy(), lambda r: r.check.kind == "dns" and r.check.path == "endpoint"
                and r.check.servers[0][0] == dead, result=DnsResult.TIMEOUT)
    # kube-proxy sends some lookups to the dead replica: a few time out on the other paths
    rs = change(rs, lambda r: r.check.kind == "dns" and r.check.path in ("resolver", "cluster_ip")
                and r.check.service in ("web", "kube-dns"), result=DnsResult.TIMEOUT)
    rs = change(rs, lambda r: r.check.kind == "tcp" and getattr(r.check, "address", "") == dead,
                result=TcpResult.REFUSED)
    rs = change(rs, lambda r: r.check.kind == "tcp" and r.check.service == "kube-dns"
                and r.check.path == "cluster_ip", result=TcpResult.REFUSED)
    # and the lookups that were retried after it timed out are slow, but passed
    rs = change(rs, lambda r: r.check.kind == "dns" and r.check.path == "cluster_ip" and r.passing,
                duration_seconds=1.002)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("dns_replica", "pod kube-system/coredns-b (198.19.1.3)")]
    assert found[0].checks == failing(rs)
    assert "does not answer" in found[0].summary


def test_replica_answering_differently_is_named_and_takes_the_mixed_lookups() -> None:
    liar = "198.19.1.2"
    rs = change(healthy(), lambda r: r.check.service == "kubernetes" and r.check.kind == "dns"
                and r.check.path == "endpoint" and r.check.servers[0][0] == liar,
                result=DnsResult.WRONG_ANSWER, answer=("198.19.1.254",))
    rs = change(rs, lambda r: r.check.service == "kubernetes" and r.check.kind == "dns"
                and getattr(r.check, "form", "") == "short", result=DnsResult.WRONG_ANSWER, answer=("198.19.1.254",))
    found = analyze(rs, TOPO)
    assert kinds(found) == [("dns_replica", "pod kube-system/coredns-a (198.19.1.2)")]
    assert "answers differently" in found[0].summary and found[0].checks == 2


def test_wrong_record_on_every_path_names_the_service() -> None:
    rs = change(healthy(), lambda r: r.check.service == "kubernetes" and r.check.kind == "dns",
                result=DnsResult.WRONG_ANSWER, answer=("198.19.1.250",))
    found = analyze(rs, TOPO)
    assert kinds(found) == [("service_records", "Service default/kubernetes")]
    assert not found[0].alternatives and found[0].checks == 7
    assert "got 198.19.1.250" in found[0].examples[0]


def test_most_services_wrong_at_once_is_one_cluster_dns_finding() -> None:
    rs = change(healthy(), lambda r: r.check.kind == "dns" and r.check.namespace == "shop",
                result=DnsResult.NXDOMAIN)
    rs = change(rs, lambda r: r.check.kind == "dns" and r.check.service == "kubernetes",
                result=DnsResult.WRONG_ANSWER, answer=("198.19.9.9",))
    found = analyze(rs, TOPO)
    assert kinds(found) == [("cluster_dns_data", f"Service kube-system/kube-dns ({VIP})")]
    assert found[0].checks == failing(rs) and len(found[0].services) == 4


def test_records_wrong_on_some_lookups_only_say_a_replica_may_be_stale() -> None:
    rs = change(healthy(), lambda r: r.check.service == "web" and getattr(r.check, "form", "") in ("short", "svc"),
                result=DnsResult.NXDOMAIN)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("service_records", "Service shop/web")]
    assert any("replica" in a for a in found[0].alternatives)


def test_pod_resolver_down_while_cluster_dns_answers() -> None:
    nodelocal = "169.254.20.10"
    rs = [dataclasses.replace(r, check=dataclasses.replace(r.check, servers=((nodelocal, 53),)))
          if r.check.kind == "dns" and r.check.path == "resolver" else r for r in healthy()]
    rs = change(rs, lambda r: r.check.kind == "dns" and r.check.path == "resolver", result=DnsResult.TIMEOUT)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("node_resolver", "node node-7")]
    assert nodelocal in found[0].summary and found[0].checks == failing(rs)


def test_dns_service_ip_broken_on_this_node_only() -> None:
    rs = change(healthy(), lambda r: r.check.kind == "dns" and r.check.path in ("resolver", "cluster_ip"),
                result=DnsResult.TIMEOUT)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("dns_service_ip", f"Service kube-system/kube-dns ({VIP})")]
    assert found[0].checks == failing(rs)  # the resolver is that Service IP: same cause


def test_relative_names_failing_while_fqdn_works_is_the_search_list() -> None:
    rs = change(healthy(), lambda r: getattr(r.check, "form", "fqdn") != "fqdn", result=DnsResult.NXDOMAIN)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("search_list", "node node-7")]
    assert found[0].checks == failing(rs) and len(found[0].services) == len(SERVICES)


def test_kube_proxy_broken_on_this_node() -> None:
    rs = change(healthy(), lambda r: r.check.path == "cluster_ip", result=TcpResult.TIMEOUT)
    rs = change(rs, lambda r: r.check.kind == "dns" and r.check.path in ("resolver", "cluster_ip"),
                result=DnsResult.TIMEOUT)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("service_proxy", "node node-7")]
    assert found[0].checks == failing(rs)


def test_one_service_ip_failing_while_its_endpoints_answer() -> None:
    rs = change(healthy(), lambda r: r.check.service == "cart" and r.check.path == "cluster_ip",
                result=TcpResult.TIMEOUT)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("service_ip", "Service shop/cart (198.18.0.22)")]
    assert "endpoints accept connections" in found[0].summary


def test_a_node_port_failing_while_the_cluster_ip_works_names_the_service_and_the_node_port() -> None:
    node_port = tcp("shop", "cart", "198.18.100.1", path="node_port", port=30080, result=TcpResult.REFUSED)
    found = analyze([*healthy(), node_port], TOPO)
    assert kinds(found) == [("service_ip", "Service shop/cart (198.18.100.1)")]
    assert found[0].summary.startswith("the NodePort of Service shop/cart fails on this node")


def test_endpoints_carried_from_an_earlier_sweep_are_not_taken_as_proof() -> None:
    """Endpoints are probed less often than Service IPs: a result carried from an earlier
    sweep does not prove they accept connections now (the pod network may be down)."""
    rs = change(healthy(), lambda r: r.check.path == "cluster_ip" and r.check.kind == "tcp",
                result=TcpResult.TIMEOUT, finished_at=2000.0)
    sweep = dataclasses.replace(TOPO, fresh_since=1500.0)  # every endpoint result is from 1000.0
    [proxy] = analyze(rs, sweep)
    assert proxy.kind is Kind.SERVICE_PROXY and "the endpoints of 0 of them accept" in proxy.summary
    assert any("pod network" in a for a in proxy.alternatives)
    one = change(healthy(), lambda r: r.check.service == "cart" and r.check.path == "cluster_ip",
                 result=TcpResult.TIMEOUT, finished_at=2000.0)
    [vip] = analyze(one, sweep)
    assert vip.kind is Kind.SERVICE_IP and "accept connections" not in vip.summary
    assert any("not probed in this sweep" in a for a in vip.alternatives)


def test_dead_backend_is_one_finding_named_by_its_pod() -> None:
    rs = healthy() + [tcp("shop", "web", "198.19.2.2", port=443)]
    rs = change(rs, lambda r: getattr(r.check, "address", "") == "198.19.2.2", result=TcpResult.REFUSED)
    rs = change(rs, lambda r: r.check.service == "web" and r.check.path == "cluster_ip", result=TcpResult.REFUSED)
    found = analyze(rs, TOPO)
    assert kinds(found) == [("endpoint_down", "pod shop/web-2 (198.19.2.2)")]
    assert found[0].checks == 3 and "port 80, 443" in found[0].summary


def test_no_endpoint_reachable_is_the_pod_network() -> None:
    rs = change(healthy(), lambda r: r.check.kind == "tcp" and r.check.path == "endpoint", result=TcpResult.TIMEOUT)
    rs = change(rs, lambda r: r.check.kind == "tcp" and r.check.path == "cluster_ip", result=TcpResult.TIMEOUT)
    rs = change(rs, lambda r: r.check.kind == "dns", result=DnsResult.TIMEOUT)
    found = analyze(rs, TOPO)
    # DNS is down too (its pods are unreachable): two findings, each a cause to look at
    assert [f.kind for f in found] == [Kind.DNS_UNREACHABLE, Kind.POD_NETWORK]
    assert sum(f.checks for f in found) == failing(rs)


def test_one_slow_replica() -> None:
    slow = "198.19.1.3"
    rs = change(healthy(), lambda r: r.check.kind == "dns" and r.check.path == "endpoint"
                and r.check.servers[0][0] == slow, duration_seconds=0.4)
    rs += [dns("shop", s, ip, path="endpoint", server=a, seconds=0.4 if a == slow else 0.002)
           for _, s, ip in SERVICES[2:] for a in REPLICAS]
    found = analyze(rs, TOPO)
    assert kinds(found) == [("dns_slow", "pod kube-system/coredns-b (198.19.1.3)")]
    assert "400 ms" in found[0].summary


@pytest.mark.parametrize("seconds", [0.05, 0.4])
def test_uniformly_slow_dns_or_fast_differences_are_no_finding(seconds: float) -> None:
    rs = change(healthy(), lambda r: r.check.kind == "dns", duration_seconds=seconds)
    if seconds < 0.1:  # 25x faster on one replica, but all well under 100 ms
        rs = change(rs, lambda r: r.check.kind == "dns" and r.check.path == "endpoint"
                    and r.check.servers[0][0] == "198.19.1.2", duration_seconds=0.002)
    assert analyze(rs, TOPO) == []


def test_every_failing_check_is_in_exactly_one_finding() -> None:
    """All replicas unreachable while the Service IP answers fits no pattern: still reported."""
    rs = change(healthy(), lambda r: r.check.kind == "dns" and r.check.path == "endpoint", result=DnsResult.TIMEOUT)
    found = analyze(rs, TOPO)
    assert [f.kind for f in found] == [Kind.UNEXPLAINED]
    assert found[0].checks == failing(rs)


def test_tracker_keeps_first_seen_while_a_finding_lasts() -> None:
    now = [100.0]
    tracker = FindingTracker(clock=lambda: now[0])
    broken = change(healthy(), lambda r: r.check.service == "cart" and r.check.path == "cluster_ip",
                    result=TcpResult.TIMEOUT)
    assert tracker.update(analyze(broken, TOPO))[0].first_seen == 100.0
    now[0] = 130.0
    assert tracker.update(analyze(broken, TOPO))[0].first_seen == 100.0
    assert tracker.update(analyze(healthy(), TOPO)) == []
    now[0] = 160.0
    assert tracker.update(analyze(broken, TOPO))[0].first_seen == 160.0


# --------------------------------------------------------------------------- across the cluster

NODES = [f"node-{i}" for i in range(1, 41)]


def test_one_node_fault_is_that_node_only() -> None:
    reported = [Reported("node-7", Kind.SERVICE_PROXY, Severity.CRITICAL, "node node-7", "3 of 3 Service IPs fail")]
    [v] = merge(reported, NODES)
    assert v.text() == "Service proxy (kube-proxy) broken on node-7 only (1 of 40 nodes)"
    assert v.summaries == ["node-7: 3 of 3 Service IPs fail"]


def test_a_pod_seen_down_from_most_nodes_is_the_pod() -> None:
    pod = "pod shop/web-2 (198.19.2.2)"
    reported = [Reported(n, Kind.ENDPOINT_DOWN, Severity.WARNING, pod) for n in NODES[:38]]
    [v] = merge(reported, NODES)
    assert v.suspect == pod and len(v.nodes) == 38
    assert v.text().endswith("(38 of 40 nodes)") and pod in v.text()


def test_replica_stale_everywhere_and_dns_down_on_some_nodes() -> None:
    replica = "pod kube-system/coredns-b (198.19.1.3)"
    dns = "Service kube-system/kube-dns (198.18.0.10)"
    reported = [Reported(n, Kind.DNS_REPLICA, Severity.WARNING, replica) for n in NODES]
    reported += [Reported(n, Kind.DNS_UNREACHABLE, Severity.CRITICAL, dns) for n in ("node-3", "node-4")]
    down, stale = merge(reported, NODES)
    assert down.text() == f"cluster DNS does not answer: {dns} on node-3, node-4 only (2 of 40 nodes)"
    assert "network from those nodes" in down.look_at()
    assert stale.text() == f"a CoreDNS replica fails or serves different data: {replica} seen from all 40 nodes"
    everywhere = merge([Reported(n, Kind.DNS_UNREACHABLE, Severity.CRITICAL, dns) for n in NODES], NODES)
    assert everywhere[0].everywhere and "CoreDNS pods running" in everywhere[0].look_at()


def test_node_local_suspects_on_several_nodes_are_one_verdict() -> None:
    reported = [Reported(n, Kind.NODE_RESOLVER, Severity.CRITICAL, f"node {n}") for n in ("node-1", "node-9")]
    [v] = merge(reported, NODES[:10])
    assert v.suspect == "" and v.nodes == ["node-1", "node-9"] and "(2 of 10 nodes)" in v.text()


def test_healthy_cluster_has_no_verdict() -> None:
    assert merge([], NODES) == []


def test_every_kind_is_documented_and_says_what_to_look_at() -> None:
    from pathlib import Path

    from agent.findings import LOOK_AT
    from agent.findings.cluster import HEADLINE

    root = Path(__file__).resolve().parents[2]
    runbook = (root / "dashboards" / "runbook.md").read_text()
    metrics_doc = (root / "docs" / "metrics.md").read_text()
    for kind in Kind:
        assert f"### Finding: {kind.value}\n" in runbook, kind
        assert f"`{kind.value}`" in metrics_doc, kind
        assert LOOK_AT[kind] and HEADLINE[kind], kind


def test_a_service_ip_seen_by_its_owners_is_not_called_node_local_only() -> None:
    """Under sharding only a Service's owners probe its IP: three of forty nodes reporting it
    does not mean the other 37 are fine."""
    suspect = "Service shop/web (198.18.0.20)"
    [v] = merge([Reported(n, Kind.SERVICE_IP, Severity.WARNING, suspect) for n in NODES[:3]], NODES)
    assert "only" not in v.text() and "(3 of 40 nodes; a Service is probed by sharding.replicas agents)" in v.text()
