"""The compact inventory model: Services and their endpoints as the agent needs them.

Built from Kubernetes `v1` Service and `discovery.k8s.io/v1` EndpointSlice objects by
`agent.inventory.parse`; deliberately much smaller than the API objects (only what DNS
expectations and TCP probes need), immutable, and hashable where useful.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Iterable, Mapping

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ServiceType(enum.Enum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


@dataclasses.dataclass(frozen=True, slots=True)
class ServicePort:
    name: str  # "" for the single unnamed port
    protocol: str  # TCP, UDP, SCTP
    port: int
    node_port: int = 0  # NodePort and LoadBalancer Services: the port on every node (0: none)


@dataclasses.dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: ServiceType
    cluster_ips: tuple[IPAddress, ...]  # empty for headless and ExternalName
    headless: bool
    ports: tuple[ServicePort, ...]
    external_name: str = ""  # lower-case, no trailing dot
    publish_not_ready: bool = False  # as parsed; not used for readiness, which the slices say (ready_endpoints)
    # "Local": kube-proxy sends ClusterIP traffic only to endpoints on the client's own node
    internal_traffic_policy: str = "Cluster"
    # "Local": a node forwards NodePort and load-balancer traffic only to its own endpoints
    external_traffic_policy: str = "Cluster"
    # status.loadBalancer.ingress IPs that kube-proxy answers itself (ipMode VIP or unset)
    load_balancer_ips: tuple[IPAddress, ...] = ()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False, compare=False)
    annotations: Mapping[str, str] = dataclasses.field(
        default_factory=dict, hash=False, compare=False
    )
    # Recorded times (Unix time, 0.0 unknown) are metadata, left out of equality: a Service
    # that compares equal has not changed (convergence fingerprints it).
    created_at: float = dataclasses.field(default=0.0, hash=False, compare=False)  # metadata.creationTimestamp

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    protocol: str
    port: int | None  # None: the slice carries "all ports" (no semantics for probing)


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[IPAddress, ...]
    ready: bool  # conditions.ready, nil => true (what CoreDNS and kube-proxy go by)
    hostname: str = ""
    pod: str = ""  # targetRef name when it refers to a Pod: how findings name an endpoint
    node: str = ""  # nodeName: where the endpoint runs (internalTrafficPolicy Local)


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str  # from the kubernetes.io/service-name label; "" when absent
    address_type: str  # IPv4, IPv6, FQDN
    endpoints: tuple[Endpoint, ...]
    ports: tuple[EndpointPort, ...]
    # Recorded times (Unix time, 0.0 unknown), left out of equality as for Service.
    created_at: float = dataclasses.field(default=0.0, hash=False, compare=False)  # metadata.creationTimestamp
    # The endpoints.kubernetes.io/last-change-trigger-time annotation: when the Pod or Service
    # change behind the slice's last update happened (the earliest, if several were batched).
    trigger_time: float = dataclasses.field(default=0.0, hash=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclasses.dataclass(frozen=True, slots=True)
class ReadyEndpoint:
    """One endpoint address a Service publishes as ready, deduplicated across slices."""

    address: IPAddress
    hostname: str
    ports: tuple[EndpointPort, ...]  # the slice's ports (never the Service's targetPort)
    first: bool = True  # the first address of its endpoint (the one consumers may limit themselves to)
    node: str = ""  # the endpoint's nodeName


class Inventory:
    """An immutable snapshot of Services and EndpointSlices, indexed for the planner."""

    __slots__ = ("services", "slices", "_by_service", "_ready")

    def __init__(
        self, services: Iterable[Service] = (), slices: Iterable[EndpointSlice] = ()
    ) -> None:
        self.services: dict[tuple[str, str], Service] = {s.key: s for s in services}
        self.slices: dict[tuple[str, str], EndpointSlice] = {s.key: s for s in slices}
        by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
        for sl in self.slices.values():
            if sl.service_name:
                by_service.setdefault((sl.namespace, sl.service_name), []).append(sl)
        for lst in by_service.values():
            lst.sort(key=lambda s: s.name)
        self._by_service = by_service
        self._ready: dict[tuple[str, str], list[ReadyEndpoint]] = {}  # the snapshot is immutable

    def __len__(self) -> int:
        return len(self.services)

    def slices_of(self, service: Service) -> list[EndpointSlice]:
        return self._by_service.get(service.key, [])

    def ready_endpoints(self, service: Service) -> list[ReadyEndpoint]:
        """Union of ready endpoint addresses over all of the Service's slices, deduplicated.

        Readiness is `conditions.ready` alone, as CoreDNS and kube-proxy read it: the
        EndpointSlice controller already sets it for every endpoint of a Service with
        `publishNotReadyAddresses`; mirrored or hand-made slices say what they say. FQDN
        slices carry no address semantics and are ignored. Computed once per Service and
        snapshot: the planner asks for it many times per Service.
        """
        cached = self._ready.get(service.key)
        if cached is not None and service is self.services.get(service.key):
            return cached
        # One per address, port set and hostname: an address two slices name differently is
        # two endpoints to CoreDNS (two SRV targets).
        seen: dict[tuple[IPAddress, int, str], ReadyEndpoint] = {}
        port_sets: dict[tuple[EndpointPort, ...], int] = {}  # hashed once per slice, not per address
        for sl in self.slices_of(service):
            if sl.address_type not in ("IPv4", "IPv6"):
                continue
            ports_id = port_sets.setdefault(sl.ports, len(port_sets))
            for ep in sl.endpoints:
                if not ep.ready:
                    continue
                for i, addr in enumerate(ep.addresses):
                    k = (addr, ports_id, ep.hostname)
                    if k not in seen:
                        seen[k] = ReadyEndpoint(addr, ep.hostname, sl.ports, i == 0, ep.node)
        ready = sorted(seen.values(), key=lambda e: (e.address.version, int(e.address)))
        if service is self.services.get(service.key):
            self._ready[service.key] = ready
        return ready

    def has_fqdn_endpoints(self, service: Service) -> bool:
        """Whether a slice of addressType FQDN lists a ready endpoint of the Service."""
        return any(sl.address_type == "FQDN" and any(ep.ready for ep in sl.endpoints)
                   for sl in self.slices_of(service))

    def pod_of(self, service_key: tuple[str, str], address: str) -> str:
        """NAMESPACE/POD of the endpoint of that Service with that address ("" when the slices
        name no pod for it)."""
        service = self.services.get(service_key)
        for sl in self.slices_of(service) if service is not None else ():
            for ep in sl.endpoints:
                if ep.pod and any(str(a) == address for a in ep.addresses):
                    return f"{sl.namespace}/{ep.pod}"
        return ""

    def endpoint_count(self) -> int:
        return sum(len(ep.addresses) for sl in self.slices.values() for ep in sl.endpoints)


def family_of(addr: IPAddress) -> str:
    return "ipv4" if addr.version == 4 else "ipv6"
