"""Builders for unit tests: Kubernetes API dicts and agent model objects.

- ``svc_obj`` / ``slice_obj``: plain Kubernetes API dicts (what the API and kubectl print),
  for the parser and the static source.
- ``service`` / ``endpoint_slice`` / ``endpoint``: model objects, for the planner.
- ``plan_settings``: a PlanSettings with test defaults.
- ``FixedSource``: an inventory source holding what the test gives it.
- ``kubectl_dump()``: a hand-written, realistic `kubectl get svc,endpointslices -A -o yaml`
  (data/kubectl-dump.yaml).

Addresses are from the benchmark range 198.18.0.0/15 and fd00::/8; nothing here sends traffic.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
from pathlib import Path
from typing import Any

from agent import model, planner

ZONE = "cluster.local"


# --------------------------------------------------------------------------- API dicts


def svc_obj(name: str = "web", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    """A v1 Service as the API returns it; `spec` keys replace the defaults."""
    base_spec: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": "198.18.0.10",
        "clusterIPs": ["198.18.0.10"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": name},
    }
    base_spec.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-" + name,
                     "resourceVersion": "100"},
        "spec": {k: v for k, v in base_spec.items() if v is not None},
    }


def slice_obj(name: str = "web-abc12", namespace: str = "shop", service: str | None = "web",
              address_type: str = "IPv4", endpoints: list[Any] | None = None,
              ports: list[Any] | None = None) -> dict[str, Any]:
    """A discovery.k8s.io/v1 EndpointSlice as the API returns it."""
    labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    if service is not None:
        labels["kubernetes.io/service-name"] = service
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "addressType": address_type,
        "endpoints": [{"addresses": ["198.18.1.1"], "conditions": {"ready": True}}]
        if endpoints is None else endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}] if ports is None else ports,
    }


def deep(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)


# --------------------------------------------------------------------------- model objects


def ips(*texts: str) -> tuple[model.IPAddress, ...]:
    return tuple(ipaddress.ip_address(t) for t in texts)


def service(name: str = "web", namespace: str = "shop", *, cluster_ips: tuple[str, ...] = ("198.18.0.10",),
            headless: bool = False, ports: tuple[tuple[str, str, int], ...] = (("http", "TCP", 80),),
            type: model.ServiceType = model.ServiceType.CLUSTER_IP, external_name: str = "",
            publish_not_ready: bool = False) -> model.Service:
    return model.Service(
        namespace=namespace,
        name=name,
        type=type,
        cluster_ips=() if headless or type is model.ServiceType.EXTERNAL_NAME else ips(*cluster_ips),
        headless=headless,
        ports=tuple(model.ServicePort(n, p, num) for n, p, num in ports),
        external_name=external_name,
        publish_not_ready=publish_not_ready,
    )


def endpoint(*addresses: str, ready: bool = True, hostname: str = "", pod: str = "") -> model.Endpoint:
    return model.Endpoint(addresses=ips(*addresses), ready=ready,
                          hostname=hostname, pod=pod)


def endpoint_slice(name: str, *endpoints: model.Endpoint, service: str = "web", namespace: str = "shop",
                   address_type: str = "IPv4",
                   ports: tuple[tuple[str, str, int | None], ...] = (("http", "TCP", 8080),)) -> model.EndpointSlice:
    return model.EndpointSlice(
        namespace=namespace,
        name=name,
        service_name=service,
        address_type=address_type,
        endpoints=tuple(endpoints),
        ports=tuple(model.EndpointPort(n, p, num) for n, p, num in ports),
    )


class FixedSource:
    """An inventory source for `runner.build` that never lists anything: the test sets
    `inventory` (replacing it is what a watch would deliver)."""

    def __init__(self, inventory: model.Inventory) -> None:
        self.inventory = inventory
        self.changed = asyncio.Event()

    async def run(self) -> None:
        await asyncio.Event().wait()


def plan_settings(**kw: Any) -> planner.PlanSettings:
    """Planner settings for unit tests: the Service-name checks only, unless a test asks for
    the hostname and PTR checks (`hostnames_per_service=3, ptr=True`, the agent's defaults)."""
    base: dict[str, Any] = {
        "cluster_domain": ZONE,
        "ndots": 5,
        "host_search": (),
        "servers": (("127.0.0.53", 53),),
        "hostnames_per_service": 0,
        "ptr": False,
    }
    base.update(kw)
    return planner.PlanSettings(**base)


# --------------------------------------------------------------------------- a real-looking dump

# What `kubectl get svc,endpointslices -A -o yaml` prints for a small cluster: a v1 List with
# managedFields, status, last-applied annotations, ownerReferences and topology noise.
#   default/kubernetes       ClusterIP, one named port; slice with nil conditions.ready
#   kube-system/kube-dns     ClusterIP, dns/UDP + dns-tcp/TCP + metrics/TCP
#   shop/web                 dual-stack (IPv6 first in clusterIPs), named targetPort,
#                            two slices per family incl. a terminating endpoint
#   shop/db                  headless StatefulSet, hostnames, a not-ready pod, the same pod
#                            in two slices
#   shop/peers               headless, publishNotReadyAddresses
#   shop/legacy-api          ExternalName (trailing dot, mixed case)
#   shop/gateway             NodePort, single unnamed port, slice with no endpoints
#   shop/external            selector-less Service with an FQDN slice
#   shop/manual-ep           a slice without the kubernetes.io/service-name label
_KUBECTL_DUMP = Path(__file__).resolve().parent / "data" / "kubectl-dump.yaml"


def kubectl_dump() -> str:
    """The dump above, tests/support/data/kubectl-dump.yaml, as text."""
    return _KUBECTL_DUMP.read_text(encoding="utf-8")
