"""What a finding is: one fault, named by the component to look at.

The kinds are a closed set; the runbook (dashboards/runbook.md) has a section for each, and
`svcprobe diagnose` merges findings of the same kind and suspect across nodes. A finding is
about *this* agent's node: the node itself is not part of it (metrics get it from the scrape,
the JSON API from the agent's identity).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Kind(enum.StrEnum):
    DNS_UNREACHABLE = "dns_unreachable"  # no DNS path answers from this node
    NODE_RESOLVER = "node_resolver"  # the pod resolver (resolv.conf, NodeLocal DNSCache) fails; cluster DNS answers
    DNS_SERVICE_IP = "dns_service_ip"  # the cluster DNS Service IP fails on this node; the replicas answer
    DNS_REPLICA = "dns_replica"  # one CoreDNS replica fails or answers differently; the others agree
    CLUSTER_DNS_DATA = "cluster_dns_data"  # most Services' records wrong at once: cluster DNS's data
    SERVICE_RECORDS = "service_records"  # a Service's records are missing or wrong on every path
    SEARCH_LIST = "search_list"  # relative names fail where the FQDN works (search list, ndots)
    SERVICE_PROXY = "service_proxy"  # many Service IPs fail, their endpoints answer (kube-proxy here)
    SERVICE_IP = "service_ip"  # one Service's IP fails, its endpoints answer (its rules on this node)
    ENDPOINT_DOWN = "endpoint_down"  # an endpoint does not accept connections (its pod)
    POD_NETWORK = "pod_network"  # no endpoint accepts connections from this node
    DNS_SLOW = "dns_slow"  # one DNS path far slower than the others
    UNEXPLAINED = "unexplained"  # failing checks no pattern above explains


# Kinds whose suspect is on the node that reports them: across the cluster they are counted
# as "on N of M nodes". The others name a cluster-wide object, "seen from N nodes".
NODE_KINDS = frozenset({Kind.NODE_RESOLVER, Kind.DNS_SERVICE_IP, Kind.SEARCH_LIST, Kind.SERVICE_PROXY,
                        Kind.SERVICE_IP, Kind.POD_NETWORK, Kind.UNEXPLAINED})

# What each kind tells the on-call engineer to look at (CLI, diagnose, runbook headings).
LOOK_AT = {
    Kind.DNS_UNREACHABLE: "cluster DNS: are the CoreDNS pods running, and can this node reach them?",
    Kind.NODE_RESOLVER: "this node's resolver: the nameserver in resolv.conf, NodeLocal DNSCache",
    Kind.DNS_SERVICE_IP: "the cluster DNS Service's rules on this node (kube-proxy)",
    Kind.DNS_REPLICA: "that CoreDNS pod: its logs, readiness, and its view of the API",
    Kind.CLUSTER_DNS_DATA: "CoreDNS's view of the API (its watch, RBAC, the kubernetes plugin's zone) "
                           "and any recent Corefile change",
    Kind.SERVICE_RECORDS: "the Service and what cluster DNS serves for it (CoreDNS config, its API watch)",
    Kind.SEARCH_LIST: "the search list and ndots pods on this node get (kubelet --resolv-conf, dnsConfig)",
    Kind.SERVICE_PROXY: "kube-proxy (or the CNI's Service proxy) on this node",
    Kind.SERVICE_IP: "that Service's rules on this node (kube-proxy), its port mapping",
    Kind.ENDPOINT_DOWN: "that pod: is it listening on the port, is it running, NetworkPolicy",
    Kind.POD_NETWORK: "this node's pod network (CNI, routes, NetworkPolicy for the agent)",
    Kind.DNS_SLOW: "the slow path: that server's load, its upstreams, the network to it",
    Kind.UNEXPLAINED: "the failing checks listed (svcprobe check, /api/v1/results?failing=true)",
}


class Severity(enum.StrEnum):
    CRITICAL = "critical"  # applications on this node fail broadly
    WARNING = "warning"  # one component is failing; others keep most of the traffic working


@dataclasses.dataclass(frozen=True)
class Suspect:
    """The component to look at, as a user names it: a node, a Service, a pod (with its
    address), or a bare address when the API names no pod."""

    type: str  # node, service, pod, address
    name: str  # node name; NAMESPACE/NAME of a Service or pod; "" for address
    address: str = ""

    def __str__(self) -> str:
        if self.type == "address":
            return f"address {self.address}"
        text = f"{'Service' if self.type == 'service' else self.type} {self.name}"
        return f"{text} ({self.address})" if self.address else text

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "address": self.address or None, "text": str(self)}


@dataclasses.dataclass
class Finding:
    kind: Kind
    severity: Severity
    suspect: Suspect
    summary: str  # the one line: what fails, compared with what works
    checks: int = 0  # failing checks this finding explains
    services: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # Services concerned
    examples: list[str] = dataclasses.field(default_factory=list)  # a few failing checks, described
    alternatives: list[str] = dataclasses.field(default_factory=list)  # other explanations that fit
    first_seen: float = 0.0  # Unix time; set by the tracker

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, str(self.suspect))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "suspect": self.suspect.to_json(),
            "summary": self.summary,
            "look_at": LOOK_AT[self.kind],
            "evidence": {
                "failing_checks": self.checks,
                "services": [f"{ns}/{name}" for ns, name in sorted(self.services)[:MAX_LISTED]],
                "services_total": len(self.services),
                "examples": self.examples,
            },
            "alternatives": self.alternatives,
            "first_seen": round(self.first_seen, 3),
        }


MAX_EXAMPLES = 3
MAX_LISTED = 10
