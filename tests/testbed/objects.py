"""The Kubernetes objects of the bed, and the admin kubectl that puts them into the API server.

The bed has no kube-controller-manager. Every Service is selector-less and its endpoints are a
hand-made EndpointSlice labelled endpointslice.kubernetes.io/managed-by=svcprobe-testbed, which
is what kube-proxy and CoreDNS read. The functions below only build manifests; `Kubectl` runs
kubectl as cluster admin inside the control-plane namespace, where the API lives.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.testbed import netns
from tests.testbed.prerequisites import binary
from tests.testbed.topology import KUBE_DNS_IP, MANAGED_BY, Backend, Node, dns_ip

Manifest = str | dict | Iterable[dict]  # YAML/JSON text, one object, or a list of objects
ServicePort = tuple[str, int, str] | tuple[str, int, str, int | str]  # name, port, protocol[, targetPort]
KUBE_DNS_PORTS = (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"))


class Kubectl:
    """kubectl (the release's own build) with the admin kubeconfig, run in `cp_netns`."""

    def __init__(self, cp_netns: str, kubeconfig: Path, cache_dir: Path) -> None:
        self.cp_netns = cp_netns
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir  # else kubectl would write ~/.kube/cache

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return netns.run_in(self.cp_netns, [
            binary("kubectl"), f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}", *args,
        ], input=input, check=check, timeout=timeout)

    def apply(self, manifest: Manifest) -> str:
        """Server-side apply (field manager svcprobe-testbed); returns kubectl's output."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, dict):
            text = json.dumps(manifest)
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        return self("apply", "--server-side", "--force-conflicts",
                    "--field-manager=svcprobe-testbed", "-f", "-", input=text).stdout

    def get_json(self, *args: str) -> dict:
        return json.loads(self("get", "-o", "json", *args).stdout)


# ---------------------------------------------------------------------- Services and endpoints
def namespace_manifest(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service_account_manifest(namespace: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace}}


def service_manifest(
    namespace: str,
    name: str,
    *,
    ports: Sequence[ServicePort] = (("http", 80, "TCP"),),
    cluster_ip: str | None = None,
    headless: bool = False,
    external_name: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict:
    """A selector-less Service (the bed has no controller to make EndpointSlices)."""
    spec: dict[str, Any] = {}
    if external_name:
        spec = {"type": "ExternalName", "externalName": external_name}
    else:
        spec["type"] = "ClusterIP"
        if headless:
            spec["clusterIP"] = "None"
        elif cluster_ip:
            spec["clusterIP"] = cluster_ip
    if ports:
        spec["ports"] = []
        for p in ports:
            port = {"name": p[0], "port": p[1], "protocol": p[2]}
            if len(p) > 3:
                port["targetPort"] = p[3]
            spec["ports"].append(port)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec}


def endpointslice_manifest(
    namespace: str,
    service: str,
    endpoints: Sequence[dict],
    *,
    ports: Sequence[tuple[str, int, str]] = (("http", 8080, "TCP"),),
    name: str | None = None,
) -> dict:
    """A hand-made EndpointSlice. Each endpoint: {"ip", optional "ready" (default True),
    "serving", "terminating", "hostname", "node", "target" (pod name)}."""
    eps = []
    for e in endpoints:
        cond = {"ready": e.get("ready", True)}
        for key in ("serving", "terminating"):
            if key in e:
                cond[key] = e[key]
        ep: dict[str, Any] = {"addresses": [e["ip"]], "conditions": cond}
        if e.get("hostname"):
            ep["hostname"] = e["hostname"]
        if e.get("node"):
            ep["nodeName"] = e["node"]
        if e.get("target"):
            ep["targetRef"] = {"kind": "Pod", "namespace": namespace, "name": e["target"]}
        eps.append(ep)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or f"{service}-testbed", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": "IPv4",
        "ports": [{"name": n, "port": port, "protocol": proto} for n, port, proto in ports],
        "endpoints": eps,
    }


def endpoints_of(endpoints: Sequence[dict | Backend]) -> list[dict]:
    """Endpoint dicts for endpointslice_manifest; a Backend becomes a ready endpoint."""
    return [{"ip": e.ip, "target": e.name} if isinstance(e, Backend) else e for e in endpoints]


def hand_made_slices_selector(service: str) -> str:
    """Label selector of the Service's hand-made EndpointSlices (deleted with the Service: there
    is no garbage collector)."""
    return (f"kubernetes.io/service-name={service},"
            f"endpointslice.kubernetes.io/managed-by={MANAGED_BY}")


# ---------------------------------------------------------------------- what bring-up creates
def kube_dns_slice(replicas: int, ready: dict[int, bool] | None = None) -> dict:
    """kube-system/kube-dns's EndpointSlice: CoreDNS replicas 1..replicas, ready unless
    `ready` says otherwise."""
    ready = ready or {}
    eps = [{"ip": dns_ip(r), "ready": ready.get(r, True),
            "target": f"coredns-{r}"}
           for r in range(1, replicas + 1)]
    return endpointslice_manifest(
        "kube-system", "kube-dns", eps, ports=KUBE_DNS_PORTS, name="kube-dns-testbed")


def bootstrap_manifests(nodes: Iterable[Node], dns_replicas: int) -> list[dict]:
    """What bring-up applies: RBAC for CoreDNS (kube-proxy's, system:node-proxier, is built in),
    the kube-dns Service and its EndpointSlice, and one Node per node namespace."""
    objs: list[dict] = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"},
         "rules": [
             {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
              "verbs": ["list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": "system:coredns"}]},
        service_manifest(
            "kube-system", "kube-dns", cluster_ip=KUBE_DNS_IP, ports=KUBE_DNS_PORTS,
            labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}),
        kube_dns_slice(dns_replicas),
    ]
    for node in nodes:
        objs.append({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": node.name, "labels": {
                         "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}}})
    return objs


def node_status_patch(node: Node) -> str:
    """Merge patch for the Node's status subresource: its InternalIP, so kube-proxy finds it."""
    return json.dumps({"status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                                {"type": "Hostname", "address": node.name}]}})
