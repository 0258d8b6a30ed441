"""Synthetic inventories for the benchmarks (agent.model objects, built directly).

Only data: addresses in here are never contacted unless a benchmark chooses loopback ones
(bench/sweep_cost.py passes loopback address functions; bench/cluster_model.py only plans).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from agent import model

AddrFn = Callable[[int], str]
EpFn = Callable[[int, int], str]


def ip(text: str) -> model.IPAddress:
    return ipaddress.ip_address(text)  # type: ignore[return-value]


def service(namespace: str, name: str, *, cluster_ips: tuple[str, ...] = (), headless: bool = False,
            ports: tuple[tuple[str, str, int], ...] = (("http", "TCP", 80),), external_name: str = "",
            annotations: dict[str, str] | None = None) -> model.Service:
    if external_name:
        kind = model.ServiceType.EXTERNAL_NAME
    else:
        kind = model.ServiceType.CLUSTER_IP
    return model.Service(namespace, name, kind, tuple(ip(a) for a in cluster_ips), headless,
                         tuple(model.ServicePort(n, p, port) for n, p, port in ports), external_name,
                         annotations=annotations or {})


def endpoint_slice(svc: model.Service, addresses: list[str], ports: tuple[tuple[str, str, int], ...],
                   suffix: str = "abcde") -> model.EndpointSlice:
    eps = tuple(model.Endpoint((ip(a),), True) for a in addresses)
    family = "IPv6" if addresses and ":" in addresses[0] else "IPv4"
    return model.EndpointSlice(svc.namespace, f"{svc.name}-{suffix}", svc.name, family, eps,
                               tuple(model.EndpointPort(n, p, port) for n, p, port in ports))


def ipv4(base: str, k: int) -> str:
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(base)) + k))


def realistic_cluster(n_services: int, *, namespaces: int = 200, endpoints_per_service: int = 10
                      ) -> tuple[list[model.Service], list[model.EndpointSlice]]:
    """A mix of Service kinds, as data only (198.18.0.0/15 addresses, never contacted):
    85% ClusterIP IPv4, 5% dual-stack ClusterIP, 8% headless, 2% ExternalName; every Service
    but ExternalName has `endpoints_per_service` ready endpoints; ports `http` (TCP 80), and a
    second named port `metrics` (TCP 9090) on every third Service."""
    services, slices = [], []
    for i in range(n_services):
        ns, name = f"ns-{i % namespaces:03d}", f"svc-{i:05d}"
        ports: tuple[tuple[str, str, int], ...] = (("http", "TCP", 80),)
        if i % 3 == 0:
            ports += (("metrics", "TCP", 9090),)
        kind = i % 100
        cip = ipv4("198.18.0.0", 16 + i)
        if kind < 85:
            svc = service(ns, name, cluster_ips=(cip,), ports=ports)
        elif kind < 90:
            svc = service(ns, name, cluster_ips=(cip, f"fd00:198:18::{i:x}"), ports=ports)
        elif kind < 98:
            svc = service(ns, name, headless=True, ports=ports)
        else:
            services.append(service(ns, name, ports=(), external_name=f"db{i}.example.org"))
            continue
        services.append(svc)
        addrs = [ipv4("198.19.32.0", (i * endpoints_per_service + j) % 32000) for j in range(endpoints_per_service)]
        slices.append(endpoint_slice(svc, addrs, tuple((n, p, 8000 + port % 1000) for n, p, port in ports)))
    return services, slices
