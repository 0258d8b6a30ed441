"""From one sweep's results to findings: which component broke, judged by comparing paths.

Pure: the latest results and what the API says about cluster DNS in, findings out. Every
failing check ends up in exactly one finding (the last kind, `unexplained`, takes what no
pattern explains), so a fault gives one finding and nothing failing goes unreported. Passing
checks (converging ones and Services without ready endpoints included) give none.

The order of the steps matters: a broad cause is looked for before the narrow ones it would
also produce (cluster DNS down before one Service's records; a dead replica before the
lookups through the Service IP that reached it; kube-proxy before one Service's IP).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

from agent.checks import CheckResult, DnsCheck, DnsResult, TcpCheck
from agent.findings.kinds import MAX_EXAMPLES, Finding, Kind, Severity, Suspect

NO_ANSWER = frozenset({DnsResult.SERVFAIL, DnsResult.REFUSED, DnsResult.TIMEOUT, DnsResult.ERROR})
WRONG = frozenset({DnsResult.NXDOMAIN, DnsResult.NODATA, DnsResult.WRONG_ANSWER})

# Service IPs failing while their endpoints answer: kube-proxy on this node rather than one
# Service's rules when at least this many Services and this share of those probed fail.
PROXY_MIN_SERVICES = 2
PROXY_MIN_SHARE = 0.5
# Relative names failing where the absolute one works: the node's search list or ndots when
# at least this many Services and this share of those asked by relative names fail so.
SEARCH_MIN_SERVICES = 2
SEARCH_MIN_SHARE = 0.5
# Most Services' records wrong at once: cluster DNS's data (its API watch, its config), from
# this many Services and this share of those asked.
ZONE_MIN_SERVICES = 3
ZONE_MIN_SHARE = 0.5
# No endpoint reachable: the node's pod network rather than each pod, from this many
# endpoint addresses and this share of those probed.
POD_NETWORK_MIN_ADDRESSES = 3
POD_NETWORK_MIN_SHARE = 0.9
# A DNS path is slow when its median lookup (absolute names that were answered) takes at
# least SLOW_SECONDS and SLOW_RATIO times the fastest other path's, over SLOW_MIN_LOOKUPS.
SLOW_SECONDS = 0.1
SLOW_RATIO = 5.0
SLOW_MIN_LOOKUPS = 3


# TCP paths kube-proxy serves on the node, and how a finding names them.
PROXIED = {"cluster_ip": "IP", "node_port": "NodePort", "load_balancer": "load-balancer IP"}

def _no_pod(namespace: str, service: str, address: str) -> str:
    return ""


@dataclasses.dataclass(frozen=True)
class Topology:
    """What the analysis needs to know besides the results."""

    dns_service: tuple[str, str] | None = ("kube-system", "kube-dns")
    dns_service_ips: frozenset[str] = frozenset()
    replica_pods: Mapping[str, str] = dataclasses.field(default_factory=dict)  # address -> NAMESPACE/POD
    ready_replicas: int | None = None  # ready addresses the cluster DNS Service has (None: unknown)
    pod_of: Callable[[str, str, str], str] = _no_pod  # (namespace, service, address) -> NAMESPACE/POD
    node: str = ""
    # Results finished before this (Unix time) were carried from an earlier sweep: endpoints
    # are probed less often than Service IPs (tcp.endpoint_interval_seconds). 0: all fresh.
    fresh_since: float = 0.0


def analyze(results: Iterable[CheckResult], topology: Topology) -> list[Finding]:
    """The findings of one set of results, most severe first."""
    return _Analysis(list(results), topology).run()


def dc(r: CheckResult) -> DnsCheck:
    assert isinstance(r.check, DnsCheck)
    return r.check


def tc(r: CheckResult) -> TcpCheck:
    assert isinstance(r.check, TcpCheck)
    return r.check


def _dns_group(c: DnsCheck) -> str:
    return f"endpoint {c.servers[0][0]}" if c.path == "endpoint" and c.servers else c.path


def _question(c: DnsCheck) -> tuple[str, str, str, str]:
    return (c.namespace, c.service, c.name.rstrip(".").lower(), c.qtype)


def describe(r: CheckResult) -> str:
    """One failing check in a few words, for a finding's examples."""
    c = r.check
    if isinstance(c, DnsCheck):
        at = f" @{c.servers[0][0]}" if c.path != "resolver" and c.servers else ""
        got = f" got {','.join(r.answer[:3])}" if r.answer else ""
        want = f" want {c.expect.describe()}" if r.result in WRONG else ""
        return f"{c.path}{at} {c.name} {c.qtype}: {r.result}{got}{want}"
    addr = f"[{c.address}]" if ":" in c.address else c.address
    return f"tcp {c.path} {addr}:{c.port} ({c.namespace}/{c.service}): {r.result}"


def _counts(rs: Sequence[CheckResult]) -> str:
    by: dict[str, int] = {}
    for r in rs:
        by[r.result] = by.get(r.result, 0) + 1
    return ", ".join(f"{n} {res}" for res, n in sorted(by.items(), key=lambda kv: -kv[1]))


class _Analysis:
    def __init__(self, results: list[CheckResult], topology: Topology) -> None:
        self.topo = topology
        self.dns = [r for r in results if isinstance(r.check, DnsCheck) and r.check.server_ready]
        self.unready = [r for r in results if isinstance(r.check, DnsCheck) and not r.check.server_ready]
        self.tcp = [r for r in results if isinstance(r.check, TcpCheck)]
        self.left: dict[int, CheckResult] = {id(r): r for r in results if not r.passing}
        self.findings: list[Finding] = []
        self.at_address: dict[str, Finding] = {}  # an endpoint address -> the finding that names it
        self.groups: dict[str, list[CheckResult]] = {}
        for r in self.dns:
            self.groups.setdefault(_dns_group(dc(r)), []).append(r)

    # -- bookkeeping

    def _take(self, finding: Finding, results: Iterable[CheckResult]) -> int:
        taken = 0
        for r in results:
            if self.left.pop(id(r), None) is None:
                continue
            taken += 1
            finding.checks += 1
            finding.services.add((r.check.namespace, r.check.service))
            if len(finding.examples) < MAX_EXAMPLES:
                finding.examples.append(describe(r))
        return taken

    def _failing(self, results: Iterable[CheckResult]) -> list[CheckResult]:
        return [r for r in results if id(r) in self.left]

    def _add(self, finding: Finding, results: Iterable[CheckResult]) -> Finding:
        self._take(finding, results)
        self.findings.append(finding)
        return finding

    def _node(self) -> Suspect:
        return Suspect("node", self.topo.node or "(this node)")

    def _replica(self, address: str) -> Suspect:
        pod = self.topo.replica_pods.get(address, "")
        return Suspect("pod", pod, address) if pod else Suspect("address", "", address)

    def _dns_service(self) -> Suspect:
        ns_name = "/".join(self.topo.dns_service) if self.topo.dns_service else "cluster DNS"
        return Suspect("service", ns_name, ",".join(sorted(self.topo.dns_service_ips)))

    def _is_dns_service(self, r: CheckResult) -> bool:
        return self.topo.dns_service == (r.check.namespace, r.check.service)

    @staticmethod
    def _dead(rs: Sequence[CheckResult]) -> bool:
        return bool(rs) and all(not r.passing and r.result in NO_ANSWER for r in rs)

    @staticmethod
    def _answers(rs: Sequence[CheckResult]) -> bool:
        return any(r.passing or r.result in WRONG for r in rs)

    # -- the steps

    def run(self) -> list[Finding]:
        if not self._dns_unreachable():
            dead, lying = self._replicas()
            self._service_ip_path(dead, lying)
            self._node_resolver()
            self._search_list()
            self._service_records(lying)
        self._endpoints()
        self._service_ips()
        self._slow()
        self._unexplained()
        order = {Severity.CRITICAL: 0, Severity.WARNING: 1}
        return sorted(self.findings, key=lambda f: (order[f.severity], -f.checks, f.kind.value, str(f.suspect)))

    def _dns_unreachable(self) -> bool:
        if not self.groups or not all(self._dead(rs) for rs in self.groups.values()):
            return False
        every = [r for rs in self.groups.values() for r in rs]
        notes = []
        if self.topo.ready_replicas == 0:
            notes.append("the API lists no ready endpoint for the cluster DNS Service")
        alive = sorted({dc(r).servers[0][0] for r in self.unready if r.result not in NO_ANSWER})
        if alive:
            notes.append("not-ready replica(s) " + ", ".join(str(self._replica(a)) for a in alive) + " do answer")
        paths = ", ".join(sorted(self.groups))
        f = Finding(Kind.DNS_UNREACHABLE, Severity.CRITICAL, self._dns_service(),
                    f"no DNS path answers from this node ({paths}): {_counts(every)}"
                    + (f"; {'; '.join(notes)}" if notes else ""),
                    alternatives=["this node's network to cluster DNS, if other nodes resolve "
                                  "(svcprobe diagnose compares nodes)"])
        self._add(f, every)
        # The cluster DNS Service's own TCP checks fail for the same reason.
        self._take(f, [r for r in self.tcp if self._is_dns_service(r)])
        return True

    def _replicas(self) -> tuple[list[Finding], list[Finding]]:
        """A replica that fails, or answers differently, while another answers everything."""
        replicas = {g.split(" ", 1)[1]: rs for g, rs in self.groups.items() if g.startswith("endpoint ")}
        healthy = {a for a, rs in replicas.items() if all(r.passing for r in rs)}
        passing_at: dict[tuple[str, str, str, str], set[str]] = {}
        for a, rs in replicas.items():
            for r in rs:
                if r.passing:
                    passing_at.setdefault(_question(dc(r)), set()).add(a)
        dead: list[Finding] = []
        lying: list[Finding] = []
        for a, rs in sorted(replicas.items()):
            bad = self._failing(rs)
            if not bad or not healthy - {a}:
                continue  # fine, or no other replica does better: not this replica's doing
            silent = [r for r in bad if r.result in NO_ANSWER]
            wrong = [r for r in bad if r.result in WRONG
                     and passing_at.get(_question(dc(r)), set()) - {a}]
            if not silent and not wrong:
                continue
            others = len(replicas) - 1
            if silent and len(silent) == len(rs):
                what = f"does not answer ({_counts(silent)}) while {len(healthy - {a})} of {others} other replica(s) do"
            elif wrong:
                what = (f"answers differently from the API ({_counts(wrong)}) while the other replica(s) "
                        "answer as the API says")
            else:
                what = f"fails {len(silent)} of {len(rs)} lookups ({_counts(silent)}) while other replicas answer"
            f = self._add(Finding(Kind.DNS_REPLICA, Severity.WARNING, self._replica(a),
                                  f"CoreDNS replica {self._replica(a)} {what}"), [*silent, *wrong])
            # Its own TCP checks (the cluster DNS Service's endpoint TCP port) fail with it.
            self._take(f, [r for r in self.tcp if tc(r).address == a and tc(r).path == "endpoint"
                           and self._is_dns_service(r)])
            self.at_address[a] = f
            (lying if wrong else dead).append(f)
        # Lookups through the Service IP or the resolver land on each replica in turn: those
        # that failed the way a bad replica fails are its doing, when the path is not dead.
        for path in ("cluster_ip", "resolver", "nodelocal"):
            rs = self.groups.get(path, [])
            if not rs or self._dead(rs):
                continue
            if dead:
                self._take(dead[0], [r for r in self._failing(rs) if r.result in NO_ANSWER])
            if lying:
                wrong_services = {(ns, svc) for f in lying for ns, svc in f.services}
                self._take(lying[0], [r for r in self._failing(rs) if r.result in WRONG
                                      and (r.check.namespace, r.check.service) in wrong_services])
        return dead, lying

    def _service_ip_path(self, dead: list[Finding], lying: list[Finding]) -> None:
        """The cluster DNS Service IP fails while replicas answer: its rules on this node."""
        rs = self.groups.get("cluster_ip", [])
        silent = [r for r in self._failing(rs) if r.result in NO_ANSWER]
        replicas_answer = any(self._answers(g) for k, g in self.groups.items() if k.startswith("endpoint "))
        if not silent or not replicas_answer:
            return
        how = "does not answer" if self._dead(rs) else f"fails {len(silent)} of {len(rs)} lookups"
        f = self._add(Finding(Kind.DNS_SERVICE_IP, Severity.CRITICAL if self._dead(rs) else Severity.WARNING,
                              self._dns_service(),
                              f"the cluster DNS Service IP {how} on this node ({_counts(silent)}) "
                              "while the CoreDNS replicas answer directly"), silent)
        # A resolver that is that same Service IP fails with it.
        resolver = self.groups.get("resolver", [])
        if resolver and all(s[0] in self.topo.dns_service_ips for s in dc(resolver[0]).servers):
            self._take(f, [r for r in self._failing(resolver) if r.result in NO_ANSWER])

    def _node_resolver(self) -> None:
        other_answers = any(self._answers(rs) for k, rs in self.groups.items() if k not in ("resolver", "nodelocal"))
        for path in ("resolver", "nodelocal"):
            rs = self.groups.get(path, [])
            silent = [r for r in self._failing(rs) if r.result in NO_ANSWER]
            if not silent:
                continue
            servers = ", ".join(sorted({h for r in rs for h, _ in dc(r).servers}))
            name = "the pod resolver" if path == "resolver" else "NodeLocal DNSCache"
            how = "does not answer" if self._dead(rs) else f"fails {len(silent)} of {len(rs)} lookups"
            f = Finding(Kind.NODE_RESOLVER, Severity.CRITICAL if self._dead(rs) else Severity.WARNING, self._node(),
                        f"{name} ({servers}) {how} ({_counts(silent)})"
                        + (" while cluster DNS answers on the other paths" if other_answers else ""))
            if not other_answers:
                f.alternatives.append("cluster DNS itself: no other DNS path to compare with (paths.* settings)")
            self._add(f, silent)

    def _search_list(self) -> None:
        rs = self.groups.get("resolver", [])
        fqdn_ok = {(dc(r).namespace, dc(r).service, dc(r).qtype) for r in rs if r.passing and dc(r).form == "fqdn"}
        relative = [r for r in self._failing(rs) if not dc(r).name.endswith(".")
                    and (dc(r).namespace, dc(r).service, dc(r).qtype) in fqdn_ok]
        with_relative = {(r.check.namespace, r.check.service) for r in rs if not dc(r).name.endswith(".")}
        services = {(r.check.namespace, r.check.service) for r in relative}
        # The search list is the node's: it fails for most Services, not for one (a lookup that
        # differs from the next is not about the list).
        if len(services) < SEARCH_MIN_SERVICES or len(services) < SEARCH_MIN_SHARE * len(with_relative):
            return
        forms = sorted({dc(r).form for r in relative})
        self._add(Finding(Kind.SEARCH_LIST, Severity.CRITICAL, self._node(),
                          f"relative names ({', '.join(forms)}) fail for {len(services)} Service(s) whose "
                          f"absolute name resolves ({_counts(relative)}): the search list or ndots on this node"),
                  relative)

    def _service_records(self, lying: list[Finding]) -> None:
        # A Service's own failure: a wrong answer, or no answer where the same path answers
        # other Services (a path that answers nobody is not about this Service).
        answered: dict[str, set[tuple[str, str]]] = {
            g: {(r.check.namespace, r.check.service) for r in rs if r.passing} for g, rs in self.groups.items()}
        by_service: dict[tuple[str, str], list[CheckResult]] = {}
        for r in self._failing(self.dns):
            key = (r.check.namespace, r.check.service)
            if r.result in WRONG or answered[_dns_group(dc(r))] - {key}:
                by_service.setdefault(key, []).append(r)
        passing_qtypes: dict[tuple[str, str], set[str]] = {}  # one pass, not one per failing Service
        for r in self.dns:
            if r.passing:
                passing_qtypes.setdefault((r.check.namespace, r.check.service), set()).add(dc(r).qtype)
        lied_about = {k for f in lying for k in f.services}
        mixed = {key: bool(passing_qtypes.get(key, set()) & {dc(r).qtype for r in bad})
                 for key, bad in by_service.items()}
        # Most Services wrong at once: cluster DNS's view of the API, one fault, not one per Service.
        asked = {(r.check.namespace, r.check.service) for r in self.dns}
        solid = [k for k in by_service if not mixed[k]]
        if len(solid) >= ZONE_MIN_SERVICES and len(solid) >= ZONE_MIN_SHARE * len(asked):
            rs = [r for k in solid for r in by_service[k]]
            self._add(Finding(Kind.CLUSTER_DNS_DATA, Severity.CRITICAL, self._dns_service(),
                              f"cluster DNS answers wrongly for {len(solid)} of {len(asked)} Services asked "
                              f"({_counts(rs)}): its data, not each Service"), rs)
            by_service = {k: v for k, v in by_service.items() if mixed[k]}
        for key, bad in sorted(by_service.items()):
            if mixed[key] and key in lied_about:
                self._take(lying[0], bad)
                continue
            paths = sorted({r.check.path for r in bad})
            f = Finding(Kind.SERVICE_RECORDS, Severity.WARNING, Suspect("service", f"{key[0]}/{key[1]}"),
                        f"cluster DNS answers {_counts(bad)} for Service {key[0]}/{key[1]} "
                        f"on {', '.join(paths)}")
            if mixed[key]:
                f.summary += "; other lookups of the same name are answered as the API says"
                f.alternatives.append("one CoreDNS replica serving stale or different data "
                                      "(each replica is asked a rotating sample of Services)")
            self._add(f, bad)

    def _endpoints(self) -> None:
        # (Addresses another finding already explains, a dead CoreDNS pod's, are left out.)
        probed = {tc(r).address for r in self.tcp if tc(r).path == "endpoint" and (r.passing or id(r) in self.left)}
        bad = [r for r in self._failing(self.tcp) if r.check.path == "endpoint"]
        by_address: dict[str, list[CheckResult]] = {}
        for r in bad:
            by_address.setdefault(tc(r).address, []).append(r)
        if len(by_address) >= POD_NETWORK_MIN_ADDRESSES and len(by_address) >= POD_NETWORK_MIN_SHARE * len(probed):
            f = self._add(Finding(Kind.POD_NETWORK, Severity.CRITICAL, self._node(),
                                  f"{len(by_address)} of {len(probed)} endpoint addresses probed from this node do "
                                  f"not accept connections ({_counts(bad)})",
                                  alternatives=["many pods down at once (if other nodes see the same: svcprobe "
                                                "diagnose)"]), bad)
            for a in by_address:
                self.at_address[a] = f
            return
        for address, rs in sorted(by_address.items()):
            c = rs[0].check
            pod = self.topo.pod_of(c.namespace, c.service, address)
            suspect = Suspect("pod", pod, address) if pod else Suspect("address", "", address)
            ports = ", ".join(sorted({str(tc(r).port) for r in rs}, key=int))
            f = self._add(Finding(Kind.ENDPOINT_DOWN, Severity.WARNING, suspect,
                                  f"endpoint {suspect} does not accept connections on port {ports} "
                                  f"({_counts(rs)})"), rs)
            self.at_address[address] = f

    def _service_ips(self) -> None:
        # The ways in kube-proxy serves on this node: ClusterIPs, NodePorts, load-balancer IPs.
        vip = [r for r in self.tcp if r.check.path in PROXIED and r.result != "no_endpoints"]
        probed = {(r.check.namespace, r.check.service) for r in vip}
        endpoint_tcp: dict[tuple[str, str], list[CheckResult]] = {}
        for r in self.tcp:
            if r.check.path == "endpoint":
                endpoint_tcp.setdefault((r.check.namespace, r.check.service), []).append(r)
        broken: dict[tuple[str, str], list[CheckResult]] = {}
        for r in self._failing(vip):
            key = (r.check.namespace, r.check.service)
            # Its backends fail too: the Service IP only passes that on.
            down = [self.at_address[tc(e).address] for e in endpoint_tcp.get(key, [])
                    if not e.passing and tc(e).address in self.at_address]
            if down:
                self._take(down[0], [r])
            else:
                broken.setdefault(key, []).append(r)
        dns_ip = next((f for f in self.findings if f.kind is Kind.DNS_SERVICE_IP), None)

        # What the endpoints of a broken Service IP tell: probed in this sweep and passing, or
        # only a result carried from an earlier sweep (tcp.endpoint_interval_seconds), or none.
        def evidence(key: tuple[str, str]) -> str:
            eps = endpoint_tcp.get(key, [])
            if not eps:
                return "none"
            return "fresh" if any(e.finished_at >= self.topo.fresh_since for e in eps) else "carried"

        seen = {key: evidence(key) for key in broken}
        stale = sorted(k for k, e in seen.items() if e != "fresh")
        if len(broken) >= PROXY_MIN_SERVICES and len(broken) >= PROXY_MIN_SHARE * len(probed):
            rs = [r for v in broken.values() for r in v]
            fresh = len(broken) - len(stale)
            f = self._add(Finding(Kind.SERVICE_PROXY, Severity.CRITICAL, self._node(),
                                  f"{len(broken)} of {len(probed)} Service IPs probed fail on this node "
                                  f"({_counts(rs)}) while the endpoints of {fresh} of them accept "
                                  "connections"), rs)
            if stale:
                f.alternatives.append(f"the backends or this node's pod network: the endpoints of {len(stale)} "
                                      "of them were not probed in this sweep (they are at the next)")
            if dns_ip is not None:  # the cluster DNS Service IP is one of them
                self.findings.remove(dns_ip)
                f.checks += dns_ip.checks
                f.services |= dns_ip.services
                f.examples = (f.examples + dns_ip.examples)[:MAX_EXAMPLES + 1]
            return
        for key, rs in sorted(broken.items()):
            if dns_ip is not None and key == self.topo.dns_service:
                self._take(dns_ip, rs)
                continue
            addresses = ",".join(sorted({tc(r).address for r in rs}))
            what = " and ".join(PROXIED[p] for p in PROXIED if any(r.check.path == p for r in rs))
            f = Finding(Kind.SERVICE_IP, Severity.WARNING, Suspect("service", f"{key[0]}/{key[1]}", addresses),
                        f"the {what} of Service {key[0]}/{key[1]} fails on this node ({_counts(rs)})")
            if seen[key] == "fresh":
                f.summary += " while its endpoints accept connections"
            elif seen[key] == "carried":
                f.alternatives.append("its endpoints, which were not probed in this sweep (they are at the next)")
            else:
                f.alternatives.append("its endpoints, which were not probed from here "
                                      "(tcp.* settings, limits or the address policy)")
            self._add(f, rs)

    def _slow(self) -> None:
        medians: dict[str, float] = {}
        # A replica that fails makes the paths in front of it slow too (the resolver's retry
        # after a timeout): that is its finding, not a slow path.
        failing_replica = any(f.kind is Kind.DNS_REPLICA for f in self.findings)
        for group, rs in self.groups.items():
            if failing_replica and not group.startswith("endpoint "):
                continue
            times = [r.duration_seconds for r in rs if r.passing and dc(r).form == "fqdn"]
            if len(times) >= SLOW_MIN_LOOKUPS:
                medians[group] = statistics.median(times)
        for group, median in sorted(medians.items()):
            others = [m for g, m in medians.items() if g != group]
            if not others or median < SLOW_SECONDS or median < SLOW_RATIO * min(others):
                continue
            fastest = min(others)
            if group.startswith("endpoint "):
                suspect = self._replica(group.split(" ", 1)[1])
            elif group == "cluster_ip":
                suspect = self._dns_service()
            else:
                suspect = self._node()
            self.findings.append(Finding(
                Kind.DNS_SLOW, Severity.WARNING, suspect,
                f"DNS over the {group} path takes {median * 1000:.0f} ms (median), "
                f"{median / fastest if fastest else float('inf'):.0f}x the fastest other path "
                f"({fastest * 1000:.0f} ms)"))

    def _unexplained(self) -> None:
        rest = list(self.left.values())
        if rest:
            self._add(Finding(Kind.UNEXPLAINED, Severity.WARNING, self._node(),
                              f"{len(rest)} failing check(s) fit no known pattern ({_counts(rest)})"), rest)
