"""NodePort and LoadBalancer paths through the bed's real kube-proxy.

Each agent probes, for the NodePort and LoadBalancer Services it checks, its own node's address
on each TCP nodePort (`node_port`) and each LoadBalancer ingress IP (`load_balancer`, which
kube-proxy answers inside the cluster). Healthy: both pass on both nodes. kube-proxy's NodePort
rules flushed on one node (kube-proxy stopped, so it cannot repair them): `node_port` fails
there only, while the ClusterIP keeps working. externalTrafficPolicy Local: a node without a
ready local endpoint is not probed on the NodePort (dropped there by design), a node with one
is.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.testbed import components
from tests.testbed.bed import Backend, TestBed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

NODE_PORT, LOCAL_NODE_PORT = 30080, 30081
LB_IP = "198.18.200.1"


@dataclass
class Ports:
    ns: str
    web: list[Backend]
    creds: Any


def service(ns: str, name: str, kind: str, node_port: int, *, local: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind, "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                                     "targetPort": 8080, "nodePort": node_port}]}
    if local:
        spec["externalTrafficPolicy"] = "Local"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


@pytest.fixture(scope="module")
def ports(bed: TestBed, agent_credentials: Any) -> Iterator[Ports]:
    ns = "nodeports"
    bed.ensure_namespace(ns)
    web = [bed.add_backend(f"np-{i}", (8080,)) for i in range(2)]
    bed.apply([service(ns, "web", "NodePort", NODE_PORT), service(ns, "lb", "LoadBalancer", NODE_PORT + 10),
               service(ns, "local", "NodePort", LOCAL_NODE_PORT, local=True)])
    bed.kubectl("patch", "service", "-n", ns, "lb", "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": LB_IP, "ipMode": "VIP"}]}}}))
    for name in ("web", "lb"):
        bed.set_endpoints(ns, name, web)
    # The Local Service's only endpoint runs on node1.
    bed.set_endpoints(ns, "local", [{"ip": web[0].ip, "target": web[0].name, "node": "node1"}])
    for node in bed.nodes:
        bed.wait_proxy_rule(node, str(NODE_PORT), endpoints=web)
    try:
        yield Ports(ns, web, agent_credentials)
    finally:
        for node in bed.nodes:
            if not bed.process_running(f"kube-proxy-{node}"):
                bed.start_kube_proxy(node)
        for b in web:
            bed.remove_backend(b.name)


def check(bed: TestBed, p: Ports, node: str) -> list[dict[str, Any]]:
    env = {"SVCPROBE_SELECTION_NAMESPACES": p.ns, "SVCPROBE_SHARDING_REPLICAS": "0",
           "SVCPROBE_DNS_GRACE_SECONDS": "0", "SVCPROBE_NODE_NAME": node,
           "SVCPROBE_HOST_IP": bed.node(node).ip, "SVCPROBE_KUBERNETES_KUBECONFIG": p.creds.direct}
    cp = bed.node_exec(node, ["env", *(f"{k}={v}" for k, v in env.items()),
                              sys.executable, "-m", "agent", "check", "--output", "json"], timeout=180)
    assert cp.returncode in (0, 1), cp.stderr
    return [r for r in json.loads(cp.stdout)["results"] if r["namespace"] == p.ns and r["check"] == "tcp"]


def by_path(results: list[dict[str, Any]], service: str, path: str) -> dict[str, Any]:
    (r,) = [r for r in results if r["service"] == service and r["path"] == path]
    return r


def test_node_ports_and_load_balancer_ips_answer_on_every_node(bed: TestBed, ports: Ports) -> None:
    for node in bed.nodes:
        rs = check(bed, ports, node)
        web = by_path(rs, "web", "node_port")
        assert (web["address"], web["port"], web["result"]) == (bed.node(node).ip, NODE_PORT, "ok"), web
        lb = by_path(rs, "lb", "load_balancer")
        assert (lb["address"], lb["result"]) == (LB_IP, "ok"), lb
        assert by_path(rs, "lb", "node_port")["result"] == "ok"
        assert [r for r in rs if not r["passing"]] == []


def test_external_traffic_policy_local_is_probed_only_where_an_endpoint_runs(bed: TestBed, ports: Ports) -> None:
    here = by_path(check(bed, ports, "node1"), "local", "node_port")
    assert here["result"] == "ok", here
    there = by_path(check(bed, ports, "node2"), "local", "node_port")
    assert there["result"] == "no_endpoints" and there["passing"], there
    assert "externalTrafficPolicy" in there["detail"]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_flushed_node_port_rules_fail_on_that_node_only(bed: TestBed, ports: Ports, mode: str) -> None:
    """Both kube-proxy modes: node1 runs `mode` (switched, then switched back)."""
    original = bed.proxy_mode_of("node1")
    if mode != original:
        bed.switch_proxy_mode("node1", mode)
    try:
        bed.wait_proxy_rule("node1", str(NODE_PORT), endpoints=ports.web)
        assert all(r["passing"] for r in check(bed, ports, "node1")), mode
        bed.stop_kube_proxy("node1")
        components.flush_node_port_rules(bed.node("node1").netns, mode)
        broken = check(bed, ports, "node1")
        assert not by_path(broken, "web", "node_port")["passing"]
        assert not by_path(broken, "lb", "node_port")["passing"]
        assert by_path(broken, "web", "cluster_ip")["result"] == "ok"  # kube-proxy's other rules stand
        assert by_path(broken, "lb", "load_balancer")["result"] == "ok"
        assert all(r["passing"] for r in check(bed, ports, "node2"))
    finally:
        if mode != original:
            bed.switch_proxy_mode("node1", original)
        else:
            bed.start_kube_proxy("node1")
    bed.wait_proxy_rule("node1", str(NODE_PORT), endpoints=ports.web)
    assert all(r["passing"] for r in check(bed, ports, "node1"))
