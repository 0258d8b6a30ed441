"""Across the cluster: the findings of every agent merged into verdicts (`svcprobe diagnose`).

Pure. A node-local suspect (kube-proxy on a node, its resolver) is counted "on N of M nodes";
a cluster object (a pod, a Service's records, a CoreDNS replica) "seen from N of M nodes". A
fault every node sees is the object's; a fault a few nodes see is those nodes'. Sharded
agents probe each Service from a few nodes only, so "seen from 3 of 40" is normal for one
backend pod: the count is what the agents reported, never a guess at who else probed it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from agent.findings.kinds import LOOK_AT, NODE_KINDS, Kind, Severity

# Kinds every agent can report, whatever Services it owns (they rest on the canaries, the DNS
# paths or many Services): a few nodes reporting one means those nodes only. A Service's IP
# failing is seen only by the agents that own the Service, so its count says nothing of the rest.
EVERY_AGENT_CHECKS = frozenset({Kind.DNS_UNREACHABLE, Kind.NODE_RESOLVER, Kind.DNS_SERVICE_IP, Kind.SEARCH_LIST,
                                Kind.SERVICE_PROXY, Kind.POD_NETWORK})

HEADLINE = {
    Kind.DNS_UNREACHABLE: "cluster DNS does not answer",
    Kind.NODE_RESOLVER: "the pod resolver (resolv.conf, NodeLocal DNSCache) fails",
    Kind.DNS_SERVICE_IP: "the cluster DNS Service IP fails",
    Kind.DNS_REPLICA: "a CoreDNS replica fails or serves different data",
    Kind.CLUSTER_DNS_DATA: "cluster DNS serves wrong data for most Services",
    Kind.SERVICE_RECORDS: "DNS records missing or wrong",
    Kind.SEARCH_LIST: "relative names fail (search list, ndots)",
    Kind.SERVICE_PROXY: "Service proxy (kube-proxy) broken",
    Kind.SERVICE_IP: "a Service IP fails",
    Kind.ENDPOINT_DOWN: "a backend pod does not accept connections",
    Kind.POD_NETWORK: "no endpoint reachable (pod network)",
    Kind.DNS_SLOW: "DNS slow on one path",
    Kind.UNEXPLAINED: "checks failing in no known pattern",
}


@dataclasses.dataclass(frozen=True)
class Reported:
    """One finding as an agent reported it (from its JSON API or from Prometheus labels)."""

    node: str
    kind: Kind
    severity: Severity
    suspect: str  # the suspect's text ("node NAME" for node-local ones)
    summary: str = ""  # the agent's one line (not in Prometheus)


@dataclasses.dataclass
class Verdict:
    kind: Kind
    severity: Severity
    suspect: str  # "" when the suspect is each reporting node itself
    nodes: list[str]
    of_nodes: int
    summaries: list[str]  # a few of the agents' own lines

    @property
    def everywhere(self) -> bool:
        return len(self.nodes) >= self.of_nodes

    def text(self) -> str:
        n, m = len(self.nodes), self.of_nodes
        where = ", ".join(self.nodes[:5]) + (f" and {n - 5} more" if n > 5 else "")
        what = HEADLINE[self.kind] + (f": {self.suspect}" if self.suspect else "")
        if self.everywhere:
            scope = f"on all {m} nodes" if self.kind in NODE_KINDS or not self.suspect else f"seen from all {m} nodes"
        elif self.kind in EVERY_AGENT_CHECKS:
            scope = f"on {where} only ({n} of {m} nodes)"
        elif self.kind in NODE_KINDS:  # about a Service: only the agents that own it probe it
            scope = f"on {where} ({n} of {m} nodes; a Service is probed by sharding.replicas agents)"
        else:
            scope = f"seen from {where} ({n} of {m} nodes)"
        return f"{what} {scope}"

    def look_at(self) -> str:
        if self.kind is Kind.DNS_UNREACHABLE and not self.everywhere:
            return "the network from those nodes to the CoreDNS pods: other nodes resolve"
        return LOOK_AT[self.kind]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "severity": self.severity.value, "suspect": self.suspect or None,
                "nodes": self.nodes, "node_count": len(self.nodes), "of_nodes": self.of_nodes,
                "verdict": self.text(), "look_at": self.look_at(), "summaries": self.summaries}


def merge(reported: Iterable[Reported], nodes: Sequence[str]) -> list[Verdict]:
    """Verdicts from every agent's findings; `nodes`: the nodes whose agents answered (the
    denominator), including those with nothing to report."""
    groups: dict[tuple[Kind, str], list[Reported]] = {}
    for r in reported:
        node_local = r.suspect.startswith("node ")
        groups.setdefault((r.kind, "" if node_local else r.suspect), []).append(r)
    total = len(set(nodes) | {r.node for rs in groups.values() for r in rs})
    verdicts = []
    for (kind, suspect), rs in groups.items():
        on = sorted({r.node for r in rs})
        severity = Severity.CRITICAL if any(r.severity is Severity.CRITICAL for r in rs) else Severity.WARNING
        summaries = [f"{r.node}: {r.summary}" for r in rs if r.summary][:3]
        verdicts.append(Verdict(kind, severity, suspect, on, total, summaries))
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1}
    return sorted(verdicts, key=lambda v: (order[v.severity], -len(v.nodes), v.kind.value, v.suspect))
