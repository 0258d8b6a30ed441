"""Pure planning: inventory + settings -> the checks of one sweep, with expected answers.

Nothing here does I/O. Expected answers follow the Kubernetes DNS specification
(reference/k8s-dns.md §5.3): A/AAAA from `spec.clusterIPs` by family (NODATA for a family
the Service lacks); headless = ready endpoint addresses over all slices (NXDOMAIN when there
are none at all); SRV for named ports; ExternalName = CNAME.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from agent import model, resolvers
from agent.checks import DnsCheck, DnsExpectation, DnsPath, Expect, SrvRecord, TcpCheck
from agent.targeting import selection

FAMILY_QTYPE = {4: "A", 6: "AAAA"}


@dataclasses.dataclass(frozen=True)
class PlanSettings:
    """The part of the settings the planner needs (kept small so tests can build it)."""

    cluster_domain: str
    ndots: int
    host_search: tuple[str, ...]
    servers: tuple[tuple[str, int], ...]
    forms: tuple[str, ...] = ("short", "namespace", "svc", "fqdn")
    qtypes: tuple[str, ...] = ("A", "AAAA")
    srv: bool = True
    tcp: bool = True
    max_endpoints_per_service: int = 0
    path: str = "resolver"
    resolvers: tuple[str, ...] = resolvers.FLAVOURS  # the C libraries whose walk is judged
    # The Corefile's kubernetes options that change answers (settings `coredns.*`).
    ignore_empty_service: bool = False
    noendpoints: bool = False
    dns_namespaces: frozenset[str] = frozenset()  # empty: every namespace is in cluster DNS
    # Bounds for any input the API accepts (0: none). Checks beyond them are counted in
    # Plan.capped, never planned.
    max_checks_per_service: int = 0
    max_ports_per_service: int = 0
    max_checks_per_sweep: int = 0
    max_answer_records: int = 0
    # Who the agent may be made to connect to: never the `tcp_deny` ranges (IPv4-mapped forms
    # included), only the `tcp_allow` ranges when there are any, never its own endpoint.
    tcp_deny: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    tcp_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    own_endpoint: tuple[str, int] | None = None
    node_name: str = ""  # this agent's node (internalTrafficPolicy Local)
    host_ip: str = ""  # this agent's node address: NodePorts are probed there ("": not probed)
    node_ports: bool = True
    load_balancers: bool = True
    hostnames_per_service: int = 3  # endpoint hostname records (and their PTR) checked per headless Service
    # The cluster DNS Service: its checks include `dns-version.<zone>` TXT, a record cluster DNS
    # serves from its own data (the DNS specification's schema version).
    dns_service: tuple[str, str] | None = None
    ptr: bool = True  # PTR of ClusterIPs and of hostname endpoints


CAP_REASONS = ("checks_per_service", "ports_per_service", "checks_per_sweep", "answer_records", "address_policy",
               "not_in_cluster_dns", "fqdn_endpoints")


def may_connect(addr: model.IPAddress, port: int, ps: PlanSettings) -> bool:
    """Whether the address policy lets the agent connect to addr:port."""
    plain = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped else addr
    if any(plain in net for net in ps.tcp_deny):
        return False
    if ps.tcp_allow and not any(plain in net for net in ps.tcp_allow):
        return False
    return ps.own_endpoint is None or (str(plain), port) != ps.own_endpoint


@dataclasses.dataclass(frozen=True)
class Plan:
    dns: tuple[DnsCheck, ...]
    tcp: tuple[TcpCheck, ...]
    not_probed_ports: int  # UDP/SCTP ports: counted, never probed
    capped: Mapping[str, int] = dataclasses.field(default_factory=dict)  # Services cut short, by limit
    # Checks planned but not due this sweep (endpoints between their probes): their last
    # results stand, they are not run.
    carried: tuple[tuple[object, ...], ...] = ()

    def __len__(self) -> int:
        return len(self.dns) + len(self.tcp)


def pod_search_list(namespace: str, cluster_domain: str, host_search: Sequence[str]) -> tuple[str, ...]:
    """The search list the kubelet writes for a ClusterFirst pod in `namespace`."""
    out: list[str] = []
    for entry in (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host_search):
        if entry not in out:  # the kubelet drops duplicates
            out.append(entry)
    return tuple(out)


def search_candidates(name: str, search: Sequence[str], ndots: int) -> list[str]:
    """Absolute names glibc tries, in order: an absolute name alone; a name with at least
    `ndots` dots as given first, then with each search suffix; otherwise the suffixes first and
    the name as given last. (musl's walk, and where each stops: agent.resolvers.)"""
    return resolvers.flavour_names(resolvers.GLIBC, name, search, ndots)[0]


def expected_queries(check: DnsCheck, cluster_domain: str) -> int:
    """Queries a lookup costs when DNS answers as expected (the search-walk amplification):
    up to the Service's own name for an answer, every name asked for a negative answer (glibc
    goes on past NODATA)."""
    if check.name.endswith("."):
        return 1
    candidates = resolvers.plan(check.name, check.search, check.ndots, check.zone, check.resolvers,
                                zone_only=check.zone_only).candidates
    if check.expect.kind is not Expect.ANSWER:
        return len(candidates)
    target = f"{check.service}.{check.namespace}.svc.{cluster_domain}."
    return candidates.index(target) + 1 if target in candidates else len(candidates)


def form_names(service: model.Service, cluster_domain: str) -> dict[str, str]:
    n, ns = service.name, service.namespace
    return {
        "short": n,
        "namespace": f"{n}.{ns}",
        "svc": f"{n}.{ns}.svc",
        "fqdn": f"{n}.{ns}.svc.{cluster_domain}.",
    }


def answers_nxdomain(service: model.Service, inventory: model.Inventory, ps: PlanSettings | None) -> bool:
    """CoreDNS options under which the Service has no records at all: `noendpoints` (no
    headless Service), `ignore empty_service` (no ClusterIP Service without a ready endpoint)."""
    if ps is None or service.type is model.ServiceType.EXTERNAL_NAME:
        return False
    if service.headless:
        return ps.noendpoints
    return ps.ignore_empty_service and not inventory.ready_endpoints(service)


def expected_addresses(service: model.Service, inventory: model.Inventory, qtype: str,
                       ps: PlanSettings | None = None) -> DnsExpectation:
    version = 4 if qtype == "A" else 6
    if answers_nxdomain(service, inventory, ps):
        return DnsExpectation(Expect.NXDOMAIN)
    if service.headless:
        ready = inventory.ready_endpoints(service)
        if not ready:
            return DnsExpectation(Expect.NXDOMAIN)
        addrs = frozenset(str(e.address) for e in ready if e.address.version == version)
    else:
        addrs = frozenset(str(ip) for ip in service.cluster_ips if ip.version == version)
    return DnsExpectation(Expect.ANSWER, addrs) if addrs else DnsExpectation(Expect.NODATA)


def expected_cname(service: model.Service) -> DnsExpectation:
    """ExternalName: a CNAME to the external name. CoreDNS answers NXDOMAIN when the
    external name is an IP address (the API accepts one, since it is a valid DNS name)."""
    try:
        ipaddress.ip_address(service.external_name)
    except ValueError:
        return DnsExpectation(Expect.ANSWER, frozenset({service.external_name + "."}))
    return DnsExpectation(Expect.NXDOMAIN)


def _through_cname(service: model.Service, inventory: model.Inventory, ps: PlanSettings,
                   ) -> list[tuple[str, DnsExpectation]]:
    """An ExternalName's addresses, as an application gets them through the CNAME. A target
    Service in the cluster answers what that Service answers; a target outside it must give
    some address (which is the upstream's), and so must a cluster name no Service has: an
    ExternalName that points nowhere fails its applications. (IP-form external names have no
    CNAME at all.)"""
    if expected_cname(service).kind is not Expect.ANSWER or not ps.qtypes:
        return []
    name = service.external_name
    suffix = f".svc.{ps.cluster_domain}"
    if name.endswith(suffix) and name[: -len(suffix)].count(".") == 1:
        svc, ns = name[: -len(suffix)].split(".")
        target = inventory.services.get((ns, svc))
        if target is not None and target.type is not model.ServiceType.EXTERNAL_NAME:
            return [(q, expected_addresses(target, inventory, q, ps)) for q in ps.qtypes]
    return [(ps.qtypes[0], DnsExpectation(Expect.RESOLVES))]


SrvIndex = dict[tuple[str, str], list[SrvRecord]]


def srv_index(service: model.Service, inventory: model.Inventory, fqdn: str,
              wanted: Collection[tuple[str, str]] | None = None) -> SrvIndex:
    """The SRV records a headless Service's ready endpoints publish, by (port name, protocol)
    (only the `wanted` ones when given): one pass over the endpoints, whatever number of
    Service ports asks. A port a ready endpoint names without a number is there with no
    records: CoreDNS then answers NODATA (it skips port -1 records, the name still exists)."""
    suffix = fqdn.lower()
    index: SrvIndex = {}
    # One RR per distinct (target, port), as servers dedupe them. A hostname-less endpoint's
    # target is a name of its own (CoreDNS: the dashed IP), so it counts once per address.
    seen: set[tuple[str, str, object, int]] = set()
    relevant: dict[tuple[model.EndpointPort, ...], list[model.EndpointPort]] = {}  # per slice's ports
    for ep in inventory.ready_endpoints(service):
        ports = relevant.get(ep.ports)
        if ports is None:
            ports = relevant[ep.ports] = [p for p in ep.ports if (
                wanted is None or (p.name, p.protocol) in wanted)]
        for ep_port in ports:
            if ep_port.port is None:
                index.setdefault((ep_port.name, ep_port.protocol), [])
            elif ep_port.port:
                target = f"{ep.hostname}.{suffix}" if ep.hostname else ""
                ident = (ep_port.name, ep_port.protocol, target or ep.address, ep_port.port)
                if ident not in seen:
                    seen.add(ident)
                    index.setdefault((ep_port.name, ep_port.protocol), []).append(SrvRecord(ep_port.port, target))
    return index


def expected_srv(service: model.Service, inventory: model.Inventory, port: model.ServicePort,
                 fqdn: str, index: SrvIndex | None = None, ps: PlanSettings | None = None) -> DnsExpectation:
    suffix = fqdn.lower()
    if answers_nxdomain(service, inventory, ps):
        return DnsExpectation(Expect.NXDOMAIN)
    if not service.headless:
        return DnsExpectation(Expect.ANSWER, srv=(SrvRecord(port.port, suffix),))
    if index is None:
        index = srv_index(service, inventory, fqdn)
    records = index.get((port.name, port.protocol))
    if records is None:
        return DnsExpectation(Expect.NXDOMAIN)
    if not records:
        return DnsExpectation(Expect.NODATA)
    return DnsExpectation(Expect.ANSWER, srv=tuple(sorted(records, key=lambda r: (r.port, r.target))),
                          srv_suffix=suffix)


def _dns_checks(service: model.Service, inventory: model.Inventory, ps: PlanSettings,
                paths: Sequence[DnsPath] = (), settle_by: float = 0.0) -> Iterable[DnsCheck]:
    names = form_names(service, ps.cluster_domain)
    search = pod_search_list(service.namespace, ps.cluster_domain, ps.host_search)

    def check(form: str, qtype: str, name: str, expect: DnsExpectation) -> DnsCheck:
        # An expected NODATA or NXDOMAIN is cluster DNS's to give: only the cluster-zone names
        # of the walk are asked (see DnsCheck.zone_only).
        negative = expect.kind is not Expect.ANSWER and not name.endswith(".")
        return DnsCheck(service.namespace, service.name, form, qtype, ps.path, name, search,
                        ps.ndots, ps.servers, expect, settle_by, zone_only=negative,
                        zone=ps.cluster_domain, resolvers=ps.resolvers)

    # Other paths: the same absolute question, so a difference between paths points at the path.
    for path in paths:
        if service.type is model.ServiceType.EXTERNAL_NAME:
            expectations = [("CNAME", expected_cname(service))]
        else:
            expectations = [(q, expected_addresses(service, inventory, q, ps)) for q in ps.qtypes]
        for qtype, expect in expectations:
            yield DnsCheck(service.namespace, service.name, "fqdn", qtype, path.name, names["fqdn"], search,
                           ps.ndots, path.servers, expect, settle_by, server_ready=path.ready)

    if service.type is model.ServiceType.EXTERNAL_NAME:
        target = expected_cname(service)
        for form in ps.forms:
            yield check(form, "CNAME", names[form], target)
        # What applications ask: addresses, through the CNAME.
        for qtype, expect in _through_cname(service, inventory, ps):
            yield check("fqdn", qtype, names["fqdn"], expect)
        return
    for form in ps.forms:
        for qtype in ps.qtypes:
            yield check(form, qtype, names[form], expected_addresses(service, inventory, qtype, ps))
    fqdn = names["fqdn"]
    if ps.srv:
        asked = _srv_ports(service, inventory, ps)
        index = (srv_index(service, inventory, fqdn, {(p.name, p.protocol) for p in asked})
                 if service.headless else None)
        for port in asked:
            # The API allows port names of 63 characters, but then `_<name>` does not fit a DNS
            # label: that SRV record cannot be asked for by anyone, so there is nothing to check.
            # (A longer name is not valid in the API at all: it stays, and its check says why it
            # cannot be asked.)
            if port.name and port.protocol in ("TCP", "UDP", "SCTP") and len(port.name) != 63:
                srv_name = f"_{port.name}._{port.protocol.lower()}.{fqdn}"
                yield check("fqdn", "SRV", srv_name, expected_srv(service, inventory, port, fqdn, index, ps))
    if service.headless and ps.hostnames_per_service and not ps.noendpoints:
        for hostname, expectations in _hostname_records(service, inventory, ps):
            for qtype, expect in expectations:
                yield check("hostname", qtype, f"{hostname}.{fqdn}", expect)
    if ps.ptr:
        yield from _ptr_checks(service, inventory, ps, fqdn, check)
    if service.key == ps.dns_service:
        yield check("version", "TXT", f"dns-version.{ps.cluster_domain}.", DnsExpectation(Expect.RESOLVES))


def _srv_ports(service: model.Service, inventory: model.Inventory, ps: PlanSettings) -> tuple[model.ServicePort, ...]:
    """The Service's ports, and for a headless Service also the named ports only its slices
    list (CoreDNS serves SRV records for those too)."""
    ports = _ports(service, ps)
    if not service.headless:
        return ports
    known = {(p.name, p.protocol) for p in service.ports}
    extra = sorted({(p.name, p.protocol) for e in inventory.ready_endpoints(service) for p in e.ports
                    if p.name and (p.name, p.protocol) not in known})
    more = tuple(model.ServicePort(name, protocol, 0) for name, protocol in extra)
    room = max(0, ps.max_ports_per_service - len(ports)) if ps.max_ports_per_service else len(more)
    return ports + more[:room]


def _hostname_records(service: model.Service, inventory: model.Inventory, ps: PlanSettings,
                      ) -> Iterable[tuple[str, list[tuple[str, DnsExpectation]]]]:
    """`<hostname>.<service>.<ns>.svc.<zone>` (the StatefulSet pod names) of the first
    `hostnames_per_service` hostnames: each answers the addresses of the ready endpoints with
    that hostname, by family (NODATA for a family it lacks)."""
    by_name: dict[str, set[model.IPAddress]] = {}
    for e in inventory.ready_endpoints(service):
        if e.hostname:
            by_name.setdefault(e.hostname.lower(), set()).add(e.address)
    for hostname in sorted(by_name)[: ps.hostnames_per_service]:
        out = []
        for qtype in ps.qtypes:
            version = 4 if qtype == "A" else 6
            addrs = frozenset(str(a) for a in by_name[hostname] if a.version == version)
            out.append((qtype, DnsExpectation(Expect.ANSWER, addrs) if addrs else DnsExpectation(Expect.NODATA)))
        yield hostname, out


def _ptr_checks(service: model.Service, inventory: model.Inventory, ps: PlanSettings, fqdn: str,
                check: Callable[[str, str, str, DnsExpectation], DnsCheck]) -> Iterable[DnsCheck]:
    """PTR of each ClusterIP (the Service's name) and of the addresses of the first
    `hostnames_per_service` hostnames of a headless Service (`<hostname>.<service>...`). An
    endpoint address may serve other Services too, and CoreDNS then names them all: the
    endpoint's own name must be among the answers."""
    if answers_nxdomain(service, inventory, ps):
        return
    for ip in service.cluster_ips:
        yield check("reverse", "PTR", ip.reverse_pointer + ".", DnsExpectation(Expect.ANSWER, frozenset({fqdn})))
    if service.headless and ps.hostnames_per_service and not ps.noendpoints:
        named: dict[model.IPAddress, set[str]] = {}
        for e in inventory.ready_endpoints(service):
            if e.hostname:
                named.setdefault(e.address, set()).add(f"{e.hostname.lower()}.{fqdn}")
        chosen = sorted(named, key=lambda a: min(named[a]))[: ps.hostnames_per_service]
        for addr in chosen:
            yield check("reverse", "PTR", addr.reverse_pointer + ".",
                        DnsExpectation(Expect.ANSWER, frozenset(named[addr]), subset=True))


def _ports(service: model.Service, ps: PlanSettings) -> tuple[model.ServicePort, ...]:
    return service.ports[: ps.max_ports_per_service] if ps.max_ports_per_service else service.ports


def _tcp_checks(service: model.Service, inventory: model.Inventory, ps: PlanSettings,
                settle_by: float = 0.0, room: int = 0) -> tuple[list[TcpCheck], int, bool, bool]:
    """The TCP checks of a Service (at most `room` when it is not 0), the ports not probed
    (UDP, SCTP), whether more were left out for want of room, and whether the address policy
    left any out."""
    if service.type is model.ServiceType.EXTERNAL_NAME:
        return [], 0, False, False
    policy = bool(ps.tcp_deny or ps.tcp_allow or ps.own_endpoint)
    refused = False
    out: list[TcpCheck] = []
    skipped = sum(1 for p in service.ports if p.protocol != "TCP")
    ready = inventory.ready_endpoints(service)
    # With internalTrafficPolicy Local, kube-proxy on this node uses this node's endpoints only.
    local_only = service.internal_traffic_policy == "Local" and not any(
        ps.node_name and e.node == ps.node_name for e in ready)
    for ip in service.cluster_ips:
        for port in _ports(service, ps):
            if port.protocol == "TCP":
                if policy and not may_connect(ip, port.port, ps):
                    refused = True
                    continue
                out.append(TcpCheck(service.namespace, service.name, "cluster_ip", str(ip), port.port,
                                    model.family_of(ip), port.name, no_endpoints=not ready or local_only,
                                    settle_by=settle_by, local_only=bool(ready) and local_only,
                                    policy="internal" if local_only else ""))
    out += _external_checks(service, ready, ps, settle_by)
    seen: set[tuple[str, int]] = set()
    probed_addresses: set[str] = set()
    for ep in ready:
        if not ep.first:  # an endpoint's further addresses: consumers may use the first only
            continue
        addr = str(ep.address)
        if (ps.max_endpoints_per_service and addr not in probed_addresses
                and len(probed_addresses) >= ps.max_endpoints_per_service):
            continue
        ports = ep.ports[: ps.max_ports_per_service] if ps.max_ports_per_service else ep.ports
        for ep_port in ports:
            if ep_port.protocol != "TCP" or ep_port.port is None or (addr, ep_port.port) in seen:
                continue
            if policy and not may_connect(ep.address, ep_port.port, ps):
                refused = True
                continue
            if room and len(out) >= room:
                return out, skipped, True, refused
            seen.add((addr, ep_port.port))
            probed_addresses.add(addr)
            out.append(TcpCheck(service.namespace, service.name, "endpoint", addr, ep_port.port,
                                model.family_of(ep.address), ep_port.name))
    return out, skipped, False, refused


def _external_checks(service: model.Service, ready: Sequence[model.ReadyEndpoint], ps: PlanSettings,
                     settle_by: float) -> list[TcpCheck]:
    """A NodePort or LoadBalancer Service's ways in from outside, probed as kube-proxy serves
    them on this node: this node's address on each TCP nodePort, and each load-balancer IP
    kube-proxy answers itself. With externalTrafficPolicy Local a node forwards them only to its
    own endpoints: on a node without a ready one they are dropped by design (not probed)."""
    if service.type not in (model.ServiceType.NODE_PORT, model.ServiceType.LOAD_BALANCER):
        return []
    local_only = service.external_traffic_policy == "Local" and not any(
        ps.node_name and e.node == ps.node_name for e in ready)
    targets: list[tuple[str, model.IPAddress, int, model.ServicePort]] = []
    if ps.node_ports and ps.host_ip:
        host = ipaddress.ip_address(ps.host_ip)
        targets += [("node_port", host, p.node_port, p) for p in _ports(service, ps)
                    if p.protocol == "TCP" and p.node_port]
    if ps.load_balancers:
        targets += [("load_balancer", ip, p.port, p) for ip in service.load_balancer_ips
                    for p in _ports(service, ps) if p.protocol == "TCP" and may_connect(ip, p.port, ps)]
    return [TcpCheck(service.namespace, service.name, path, str(addr), port, model.family_of(addr), sp.name,
                     no_endpoints=not ready or local_only, settle_by=settle_by,
                     local_only=bool(ready) and local_only, policy="external" if local_only else "")
            for path, addr, port, sp in targets]


def plan(
    inventory: model.Inventory,
    ps: PlanSettings,
    services: Iterable[model.Service] | None = None,
    *,
    paths: Sequence[DnsPath] = (),
    path_services: Collection[tuple[str, str]] = (),
    settle_by: Mapping[tuple[str, str], float] | None = None,
) -> Plan:
    """Every check for `services` (default: the whole inventory), in a stable order.

    `paths` are asked about the Services in `path_services` (absolute names only);
    `settle_by` gives, per Service, the time until which differences count as converging.
    Per-Service annotations can drop the DNS or the TCP checks.
    """
    dns: list[DnsCheck] = []
    tcp: list[TcpCheck] = []
    not_probed = 0
    capped = dict.fromkeys(CAP_REASONS, 0)
    settle = settle_by or {}
    chosen = inventory.services.values() if services is None else services
    per_service, per_sweep = ps.max_checks_per_service, ps.max_checks_per_sweep
    for service in sorted(chosen, key=lambda s: s.key):
        if per_sweep and len(dns) + len(tcp) >= per_sweep:  # full: the rest is only counted
            capped["checks_per_sweep"] += 1
            continue
        if ps.max_ports_per_service and len(service.ports) > ps.max_ports_per_service:
            capped["ports_per_service"] += 1
        cut = False
        until = settle.get(service.key, 0.0)
        mine: list[DnsCheck] = []
        too_big = (ps.max_answer_records and service.headless
                   and len(inventory.ready_endpoints(service)) > ps.max_answer_records)
        if too_big:  # no DNS message can carry that answer: nothing to expect of it
            capped["answer_records"] += 1
        elif ps.dns_namespaces and service.namespace not in ps.dns_namespaces:
            capped["not_in_cluster_dns"] += 1  # the Corefile's `namespaces` leaves it out
        elif service.headless and not ps.noendpoints and inventory.has_fqdn_endpoints(service):
            # CoreDNS answers CNAMEs to the names of FQDN slices; svcprobe does not model them.
            capped["fqdn_endpoints"] += 1
        elif not selection.skip_dns(service):
            extra = paths if service.key in path_services else ()
            mine = list(_dns_checks(service, inventory, ps, extra, until))
            if per_service and len(mine) > per_service:
                cut, mine = True, mine[:per_service]
        checks: list[TcpCheck] = []
        if ps.tcp and not selection.skip_tcp(service):
            room = per_service - len(mine) if per_service else 0
            if per_service and room <= 0:
                cut = True
            else:
                checks, skipped, more, refused = _tcp_checks(service, inventory, ps, until, room)
                not_probed += skipped
                capped["address_policy"] += refused
                cut = cut or more
        capped["checks_per_service"] += cut
        if per_sweep and len(dns) + len(tcp) + len(mine) + len(checks) > per_sweep:
            left = max(0, per_sweep - len(dns) - len(tcp))
            capped["checks_per_sweep"] += 1
            mine, checks = mine[:left], checks[: max(0, left - len(mine))]
        dns.extend(mine)
        tcp.extend(checks)
    return Plan(tuple(dns), tuple(tcp), not_probed, {k: v for k, v in capped.items() if v})
