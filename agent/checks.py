"""What one sweep does: DNS and TCP checks with their expected outcomes, and their results.

Plain value types shared by the planner (which makes checks), the probes (which run them),
the results store and every output (metrics, JSON API, CLI report).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class DnsResult(enum.StrEnum):
    """The `result` label of a DNS check (DESIGN §3): `ok` when the answer matched what the
    API says (an expected NODATA or NXDOMAIN included), else what went wrong."""

    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    WRONG_ANSWER = "wrong_answer"
    ERROR = "error"


class TcpResult(enum.StrEnum):
    """The `result` label of a TCP check; `no_endpoints` is expected, not a failure."""

    OK = "ok"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    ERROR = "error"
    NO_ENDPOINTS = "no_endpoints"


# Outcomes that may only mean "not converged yet" right after a Service changed:
DNS_CONVERGING = frozenset({DnsResult.WRONG_ANSWER, DnsResult.NXDOMAIN, DnsResult.NODATA})
TCP_CONVERGING = frozenset({TcpResult.REFUSED, TcpResult.TIMEOUT})
TCP_PASSING = frozenset({TcpResult.OK, TcpResult.NO_ENDPOINTS})


class Expect(enum.StrEnum):
    ANSWER = "answer"  # NOERROR with records of the query type
    NODATA = "nodata"  # NOERROR, no records of the query type
    NXDOMAIN = "nxdomain"
    # Some record of the type, whatever it is: what can be known of an ExternalName's target
    # outside the cluster, whose addresses are the upstream's.
    RESOLVES = "resolves"


@dataclasses.dataclass(frozen=True, slots=True)
class SrvRecord:
    port: int
    target: str  # absolute, lower-case; "" = any name under the Service (endpoint without hostname)


@dataclasses.dataclass(frozen=True, slots=True)
class DnsExpectation:
    kind: Expect
    records: frozenset[str] = frozenset()  # A/AAAA addresses or the CNAME target (absolute)
    srv: tuple[SrvRecord, ...] = ()
    srv_suffix: str = ""  # where targets of hostname-less endpoints must live
    subset: bool = False  # the answer must hold `records`; more are fine (a PTR of a shared address)

    def describe(self) -> str:
        if self.kind is Expect.RESOLVES:
            return "some address (the upstream's)"
        if self.kind is not Expect.ANSWER:
            return self.kind.value.upper()
        if self.srv:
            return " ".join(sorted(f"{r.port}:{r.target or '*.' + self.srv_suffix}" for r in self.srv))
        return " ".join(sorted(self.records)) + (" (among others)" if self.subset else "")


@dataclasses.dataclass(frozen=True, slots=True)
class DnsCheck:
    namespace: str
    service: str
    form: str  # short, namespace, svc, fqdn
    qtype: str  # A, AAAA, SRV, CNAME
    path: str  # resolver, cluster_ip, endpoint, nodelocal
    name: str  # as an application would pass it; absolute when it ends with "."
    search: tuple[str, ...]  # search list of a pod in the Service's namespace
    ndots: int
    servers: tuple[tuple[str, int], ...]
    expect: DnsExpectation
    settle_by: float = 0.0  # Unix time until which a differing answer counts as converging
    # False for a CoreDNS replica the API lists as not ready: it gets no traffic through the
    # Service, so its answers are shown (is the pod alive?) but never count as failing.
    server_ready: bool = True
    # Ask only the cluster-zone names of the walk (the name with the kubelet's three cluster
    # suffixes), not the node's own search domains and the bare name: an expected NODATA or
    # NXDOMAIN is cluster DNS's to give; what the rest of the walk gets is the upstream
    # resolver's business, and its SERVFAIL or wildcard record is no fault of the Service.
    zone_only: bool = False
    zone: str = ""  # the cluster zone: names under it are cluster DNS's to answer ("" = every name)
    # The C libraries whose walk of a relative name is judged (agent.resolvers.FLAVOURS); a
    # check fails when any of them would fail.
    resolvers: tuple[str, ...] = ("glibc", "musl")

    kind = "dns"

    @property
    def key(self) -> tuple[Any, ...]:
        return ("dns", self.namespace, self.service, self.form, self.qtype, self.path, self.name,
                self.servers)


@dataclasses.dataclass(frozen=True, slots=True)
class TcpCheck:
    namespace: str
    service: str
    path: str  # cluster_ip, endpoint, node_port, load_balancer (the `target` label of the TCP metrics)
    address: str
    port: int
    family: str  # ipv4, ipv6
    port_name: str
    no_endpoints: bool = False  # the Service has no ready endpoint: nothing to connect to
    # internal/externalTrafficPolicy (`policy`) Local and no ready endpoint on this agent's
    # node: kube-proxy drops the connection by design (no_endpoints is then set too: not
    # probed, not a failure)
    local_only: bool = False
    policy: str = ""  # "internal" or "external": which traffic policy made it local_only
    settle_by: float = 0.0  # ClusterIP only: kube-proxy may still be programming a change

    kind = "tcp"

    @property
    def key(self) -> tuple[Any, ...]:
        return ("tcp", self.namespace, self.service, self.path, self.address, self.port)


Check = DnsCheck | TcpCheck


@dataclasses.dataclass(frozen=True)
class DnsPath:
    """A way to reach cluster DNS besides the pod's resolver, asked with absolute names only."""

    name: str  # cluster_ip, endpoint, nodelocal
    servers: tuple[tuple[str, int], ...]
    ready: bool = True  # endpoint: the replica is ready (a not-ready one is asked, never judged)


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    result: DnsResult | TcpResult
    duration_seconds: float
    finished_at: float  # Unix time
    queries: int = 0  # DNS queries on the wire for this lookup (0 for TCP)
    server: str = ""  # DNS server that gave the final answer (or was last tried)
    detail: str = ""
    answer: tuple[str, ...] = ()  # records received, for the JSON API and debug view
    trace: tuple[dict[str, Any], ...] | None = None  # every query, when asked for
    converging: bool = False  # differs, but the Service changed within the grace window
    # (C library, result) for each library, when they disagree (else every one got `result`)
    by_resolver: tuple[tuple[str, str], ...] = ()

    @property
    def passing(self) -> bool:
        if self.converging:
            return True
        if isinstance(self.check, DnsCheck) and not self.check.server_ready:
            return True  # shown, not judged: see DnsCheck.server_ready
        if self.check.kind == "dns":
            return self.result == "ok"
        return self.result in TCP_PASSING

    def resolver_results(self) -> dict[str, str]:
        """What each judged C library got (a relative name's walk differs between them)."""
        if self.by_resolver:
            return dict(self.by_resolver)
        c = self.check
        if isinstance(c, DnsCheck) and not c.name.endswith("."):
            return dict.fromkeys(c.resolvers, str(self.result))
        return {}

    def to_json(self) -> dict[str, Any]:
        c = self.check
        out: dict[str, Any] = {
            "namespace": c.namespace,
            "service": c.service,
            "check": c.kind,
            "form": getattr(c, "form", None),
            "qtype": getattr(c, "qtype", None),
            "path": c.path,
            "target": c.path if isinstance(c, TcpCheck) else None,
            "name": c.name if isinstance(c, DnsCheck) else None,
            "address": c.address if isinstance(c, TcpCheck) else self.server or None,
            "port": c.port if isinstance(c, TcpCheck) else None,
            "result": self.result,
            "passing": self.passing,
            "converging": self.converging,
            "server_ready": c.server_ready if isinstance(c, DnsCheck) else None,
            "duration_seconds": round(self.duration_seconds, 6),
            "queries": self.queries if isinstance(c, DnsCheck) else None,
            "expected": c.expect.describe() if isinstance(c, DnsCheck) else None,
            "answer": list(self.answer) if isinstance(c, DnsCheck) else None,
            "detail": self.detail,
            "finished_at": round(self.finished_at, 3),
        }
        if self.by_resolver:  # what each C library got, only where they disagree (pages stay small)
            out["resolvers"] = dict(self.by_resolver)
        if self.trace is not None:
            out["trace"] = list(self.trace)
        return out
