"""From the whole inventory to what this agent probes (pure).

Selection (namespaces, labels, opt-out annotations) narrows the inventory; sharding gives
this agent its share of the rest; canaries (the API server's Service, the cluster DNS
Service, the agents' own Service, configured extras) are probed by every agent, and only
they are also asked over the other DNS paths: the cluster DNS Service IP, each cluster DNS
replica directly, NodeLocal DNSCache. So each node checks every path every sweep at a small,
fixed cost, while per-Service load stays constant as nodes are added.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

from agent import model, settings as settings_mod
from agent.checks import DnsPath
from agent.targeting import sharding
from agent.targeting.selection import Selection

Key = tuple[str, str]
API_SERVICE: Key = ("default", "kubernetes")
# Canaries must stay cheap: every agent probes them every sweep. A would-be canary with more
# ready endpoints than this (the agents' own Service in a large cluster: thousands of
# addresses, one big DNS answer and a full TCP mesh) is probed like any other Service instead,
# by `replicas` agents.
CANARY_MAX_ENDPOINTS = 50


@dataclasses.dataclass(frozen=True)
class AssignmentSettings:
    selection: Selection = dataclasses.field(default_factory=Selection)
    canaries: tuple[Key, ...] = ()
    dns_service: Key | None = ("kube-system", "kube-dns")
    peers_service: Key | None = None
    me: str = ""  # this agent's identity among its peers (its pod IP); "" disables sharding
    replicas: int = 3
    cluster_ip_path: bool = True
    endpoint_path: bool = True
    nodelocal: tuple[str, int] | None = None


def settings_from(s: settings_mod.Settings) -> AssignmentSettings:
    """Selection, sharding and path settings (validated by `agent.settings.load`)."""
    refs = settings_mod.service_refs(s)
    return AssignmentSettings(
        selection=Selection(frozenset(s.selection.namespaces), frozenset(s.selection.exclude_namespaces),
                            settings_mod.label_selector(s), frozenset(refs.services)),
        canaries=refs.canaries,
        dns_service=refs.dns_service,
        peers_service=refs.peers_service,
        me=s.pod_ip,
        replicas=s.sharding.replicas,
        cluster_ip_path=s.paths.cluster_ip,
        endpoint_path=s.paths.endpoints,
        nodelocal=settings_mod.nodelocal_address(s),
    )


@dataclasses.dataclass(frozen=True)
class Assignment:
    services: tuple[model.Service, ...]  # everything this agent probes
    canaries: frozenset[Key]  # the subset probed by every agent (and over every DNS path)
    paths: tuple[DnsPath, ...]
    peers: tuple[str, ...]  # agents found, this one included
    selected: int  # Services selected cluster-wide (before sharding)
    owned: int  # of those, this agent's share (canaries not counted)


def _dns_port(ports: Sequence[model.ServicePort] | Sequence[model.EndpointPort]) -> int:
    """The DNS port of the cluster DNS Service or slice: UDP named dns, else any UDP, else 53."""
    udp = [p.port for p in ports if p.protocol == "UDP" and p.port]
    named = [p.port for p in ports if p.protocol == "UDP" and p.port and p.name == "dns"]
    return (named or udp or [53])[0] or 53


def _replica_paths(inventory: model.Inventory, svc: model.Service) -> list[DnsPath]:
    """Each cluster DNS replica the slices list, ready or not: a replica that is not ready is
    asked too (is the pod alive?), and said to be not ready, so that the cluster DNS Service
    having no ready endpoint does not hide whether its pods answer."""
    found: dict[str, DnsPath] = {}
    for sl in inventory.slices_of(svc):
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        port = _dns_port(sl.ports)
        for ep in sl.endpoints:
            if not ep.addresses:
                continue
            addr = str(ep.addresses[0])  # an endpoint's first address, as consumers use
            if addr not in found or (ep.ready and not found[addr].ready):
                found[addr] = DnsPath("endpoint", ((addr, port),), ready=ep.ready)
    return [found[a] for a in sorted(found, key=_address_order)]


def _address_order(text: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(text)
    return (addr.version, int(addr))


def dns_paths(inventory: model.Inventory, ts: AssignmentSettings) -> tuple[DnsPath, ...]:
    paths: list[DnsPath] = []
    svc = inventory.services.get(ts.dns_service) if ts.dns_service else None
    if svc is not None:
        port = _dns_port(svc.ports)
        if ts.cluster_ip_path and svc.cluster_ips:
            paths.append(DnsPath("cluster_ip", tuple((str(ip), port) for ip in svc.cluster_ips)))
        if ts.endpoint_path:
            paths += _replica_paths(inventory, svc)
    if ts.nodelocal is not None:
        paths.append(DnsPath("nodelocal", (ts.nodelocal,)))
    return tuple(paths)


def peers(inventory: model.Inventory, ts: AssignmentSettings) -> tuple[str, ...]:
    found: set[str] = set()
    svc = inventory.services.get(ts.peers_service) if ts.peers_service else None
    if svc is not None:
        found = {str(ep.address) for ep in inventory.ready_endpoints(svc)}
    if ts.me:
        found.add(ts.me)
    return tuple(sorted(found))


def assign(inventory: model.Inventory, ts: AssignmentSettings) -> Assignment:
    canary_keys = {API_SERVICE, *ts.canaries}
    if ts.dns_service:
        canary_keys.add(ts.dns_service)
    if ts.peers_service:
        canary_keys.add(ts.peers_service)
    canaries = frozenset(k for k in canary_keys if k in inventory.services and _not_ignored(inventory.services[k])
                         and len(inventory.ready_endpoints(inventory.services[k])) <= CANARY_MAX_ENDPOINTS)
    selected = [s for s in inventory.services.values() if ts.selection.selects(s) and s.key not in canaries]
    agents = peers(inventory, ts)
    if ts.me and ts.replicas > 0 and len(agents) > ts.replicas:
        others = [p for p in agents if p != ts.me]
        mine = [s for s in selected
                if sharding.owns(ts.me, sharding.service_key(*s.key), others, ts.replicas)]
    else:
        mine = selected
    chosen = sorted([*mine, *(inventory.services[k] for k in canaries)], key=lambda s: s.key)
    return Assignment(tuple(chosen), canaries, dns_paths(inventory, ts), agents, len(selected), len(mine))


def _not_ignored(svc: model.Service) -> bool:
    # Canaries skip the namespace and label filters, but an explicit opt-out still counts.
    return Selection().selects(svc)
