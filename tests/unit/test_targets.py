"""Selection, canaries, DNS paths, sharding wiring and the convergence grace window."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from agent import model, planner
from agent.checks import CheckResult, DnsResult, Expect
from agent.settings import selectors
from agent.targeting import assignment, selection
from agent.targeting.convergence import ConvergenceTracker


def svc(ns: str, name: str, ip: str | None = "198.18.0.10", *, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, ports: tuple[model.ServicePort, ...] = ()) -> model.Service:
    return model.Service(ns, name, model.ServiceType.CLUSTER_IP,
                         (ipaddress.ip_address(ip),) if ip else (), ip is None,
                         ports or (model.ServicePort("http", "TCP", 80),),
                         labels=labels or {}, annotations=annotations or {})


def eps(ns: str, service: str, *addrs: str, port: model.EndpointPort | None = None) -> model.EndpointSlice:
    ports = (port,) if port else (model.EndpointPort("http", "TCP", 8080),)
    return model.EndpointSlice(ns, f"{service}-x", service, "IPv4",
                               tuple(model.Endpoint((ipaddress.ip_address(a),), True) for a in addrs),
                               ports)


DNS_PORTS = (model.ServicePort("dns", "UDP", 53), model.ServicePort("dns-tcp", "TCP", 53))


def cluster(extra: list[model.Service] | None = None, n: int = 60) -> model.Inventory:
    services = [
        svc("default", "kubernetes", "198.18.0.1"),
        svc("kube-system", "kube-dns", "198.18.0.10", ports=DNS_PORTS),
        svc("monitoring", "svcprobe", None),
        *[svc(f"team{i % 3}", f"app{i}", f"198.18.{1 + i // 250}.{i % 250 + 1}",
              labels={"tier": "web" if i % 2 else "db"})
          for i in range(n)],
        *(extra or []),
    ]
    slices = [
        eps("kube-system", "kube-dns", "198.19.0.2", "198.19.0.3", port=model.EndpointPort("dns", "UDP", 1053)),
        eps("monitoring", "svcprobe", *[f"198.19.9.{i}" for i in range(1, 11)]),
    ]
    return model.Inventory(services, slices)


PS = planner.PlanSettings("cluster.local", 5, (), (("198.18.0.10", 53),))


@pytest.mark.parametrize(("text", "labels", "match"), [
    ("", {}, True),
    ("tier=web", {"tier": "web"}, True),
    ("tier==web", {"tier": "db"}, False),
    ("tier!=web", {}, True),
    ("tier in (web, db)", {"tier": "db"}, True),
    ("tier notin (web,db)", {"tier": "db"}, False),
    ("tier", {"tier": ""}, True),
    ("!tier", {"tier": "x"}, False),
    ("app.kubernetes.io/name=shop,tier in (web)", {"app.kubernetes.io/name": "shop", "tier": "web"}, True),
    ("app.kubernetes.io/name=shop,tier in (web)", {"app.kubernetes.io/name": "shop", "tier": "db"}, False),
])
def test_label_selector(text: str, labels: dict[str, str], match: bool) -> None:
    reqs = selectors.parse_selector(text)
    assert all(r.matches(labels) for r in reqs) is match


@pytest.mark.parametrize("bad", ["tier=", "=web", "tier in ()", "tier in web", "a,,b", "tier >= 3"])
def test_bad_label_selector_is_rejected(bad: str) -> None:
    if bad == "tier=":  # an empty value is allowed by Kubernetes
        assert selectors.parse_selector(bad)[0].values == frozenset({""})
        return
    with pytest.raises(selectors.SelectorError):
        selectors.parse_selector(bad)


def test_selection_and_annotations() -> None:
    inv = cluster([
        svc("team0", "quiet", annotations={selection.IGNORE: "true"}),
        svc("team0", "nodns", annotations={selection.SKIP_DNS: "true"}),
        svc("team0", "notcp", annotations={selection.SKIP_TCP: "yes"}),
    ])
    ts = assignment.AssignmentSettings(selection=selection.Selection(frozenset({"team0"}), frozenset(), ()))
    t = assignment.assign(inv, ts)
    names = {s.name for s in t.services}
    assert "quiet" not in names
    assert {"kubernetes", "kube-dns"} <= names  # canaries ignore namespace filters
    assert not any(s.namespace in ("team1", "team2") for s in t.services)
    p = planner.plan(inv, PS, services=t.services)
    assert not [c for c in p.dns if c.service == "nodns"] and [c for c in p.tcp if c.service == "nodns"]
    assert not [c for c in p.tcp if c.service == "notcp"] and [c for c in p.dns if c.service == "notcp"]


def test_an_opted_out_canary_is_not_probed() -> None:
    inv = cluster([svc("team0", "edge", annotations={selection.IGNORE: "true"})])
    t = assignment.assign(inv, assignment.AssignmentSettings(canaries=(("team0", "edge"),)))
    assert ("team0", "edge") not in t.canaries


def test_dns_paths_from_the_cluster_dns_service() -> None:
    t = assignment.assign(cluster(), assignment.AssignmentSettings(nodelocal=("169.254.20.10", 53),
                                                         peers_service=("monitoring", "svcprobe")))
    paths = {(p.name, p.servers) for p in t.paths}
    assert paths == {
        ("cluster_ip", (("198.18.0.10", 53),)),
        ("endpoint", (("198.19.0.2", 1053),)),  # the slice's port, not the Service's
        ("endpoint", (("198.19.0.3", 1053),)),
        ("nodelocal", (("169.254.20.10", 53),)),
    }
    p = planner.plan(cluster(), PS, services=t.services, paths=t.paths, path_services=t.canaries)
    endpoint_checks = [c for c in p.dns if c.path == "endpoint"]
    # Only canaries go over the extra paths, absolute name, A and AAAA, one replica each.
    assert {c.service for c in endpoint_checks} == {"kubernetes", "kube-dns", "svcprobe"}
    assert all(c.form == "fqdn" and c.name.endswith(".") and len(c.servers) == 1 for c in endpoint_checks)
    assert {c.qtype for c in endpoint_checks} == {"A", "AAAA"}
    headless_canary = [c for c in endpoint_checks if c.service == "svcprobe" and c.qtype == "A"]
    assert all(c.expect.kind is Expect.ANSWER and len(c.expect.records) == 10 for c in headless_canary)


def test_replicas_not_ready_are_asked_but_not_judged() -> None:
    """A CoreDNS pod the slices list as not ready is still asked (is it alive?), and its
    failures never count: it takes no traffic through the Service."""
    base = cluster()
    dns_slice = model.EndpointSlice("kube-system", "kube-dns-x", "kube-dns", "IPv4", (
        model.Endpoint((ipaddress.ip_address("198.19.0.2"),), True, pod="coredns-a"),
        model.Endpoint((ipaddress.ip_address("198.19.0.3"),), False, pod="coredns-b"),
    ), (model.EndpointPort("dns", "UDP", 53),))
    inv = model.Inventory(base.services.values(), [dns_slice])
    t = assignment.assign(inv, assignment.AssignmentSettings())
    assert [(p.servers[0][0], p.ready) for p in t.paths if p.name == "endpoint"] == \
        [("198.19.0.2", True), ("198.19.0.3", False)]
    p = planner.plan(inv, PS, services=t.services, paths=t.paths, path_services=t.canaries)
    unready = [c for c in p.dns if c.servers == (("198.19.0.3", 53),)]
    assert unready and not any(c.server_ready for c in unready)
    failed = CheckResult(unready[0], DnsResult.TIMEOUT, 2.0, 0.0)
    assert failed.passing and failed.to_json()["server_ready"] is False
    assert not CheckResult(dataclasses.replace(unready[0], server_ready=True), DnsResult.TIMEOUT, 2.0, 0.0).passing


def test_paths_can_be_switched_off() -> None:
    t = assignment.assign(cluster(), assignment.AssignmentSettings(cluster_ip_path=False, endpoint_path=False))
    assert t.paths == ()


def test_sharding_gives_each_agent_a_share_and_keeps_canaries() -> None:
    inv = cluster(n=300)
    peers = [f"198.19.9.{i}" for i in range(1, 11)]
    shares = []
    for me in peers:
        ts = assignment.AssignmentSettings(me=me, peers_service=("monitoring", "svcprobe"), replicas=3)
        t = assignment.assign(inv, ts)
        assert len(t.peers) == 10
        assert {("default", "kubernetes"), ("kube-system", "kube-dns"), ("monitoring", "svcprobe")} <= t.canaries
        assert t.canaries <= {s.key for s in t.services}
        shares.append({s.key for s in t.services} - t.canaries)
        assert t.owned == len(shares[-1]) and t.selected == 300
    counts: dict[tuple[str, str], int] = {}
    for share in shares:
        for k in share:
            counts[k] = counts.get(k, 0) + 1
    assert len(counts) == 300 and set(counts.values()) == {3}


def test_agent_not_yet_listed_counts_itself() -> None:
    ts = assignment.AssignmentSettings(me="198.19.99.99", peers_service=("monitoring", "svcprobe"))
    t = assignment.assign(cluster(n=30), ts)
    assert "198.19.99.99" in t.peers and len(t.peers) == 11


def test_without_identity_every_service_is_probed() -> None:
    t = assignment.assign(cluster(n=30), assignment.AssignmentSettings(peers_service=("monitoring", "svcprobe")))
    assert t.owned == t.selected == 30


def test_change_tracker_grace_window() -> None:
    now = [1000.0]
    tracker = ConvergenceTracker(30, clock=lambda: now[0])
    base = cluster(n=3)
    tracker.observe(base)
    assert tracker.settle_by() == {}  # what exists at start is settled
    moved = model.Inventory(
        [dataclasses.replace(s, cluster_ips=(ipaddress.ip_address("198.18.7.7"),)) if s.name == "app1" else s
         for s in base.services.values()], base.slices.values())
    now[0] = 1010.0
    tracker.observe(moved)
    assert tracker.settle_by() == {("team1", "app1"): 1040.0}
    now[0] = 1041.0
    assert tracker.settle_by() == {}


def test_endpoint_change_starts_the_grace_window() -> None:
    now = [0.0]
    tracker = ConvergenceTracker(10, clock=lambda: now[0])
    base = cluster(n=1)
    tracker.observe(base)
    slices = [eps("kube-system", "kube-dns", "198.19.0.2", port=model.EndpointPort("dns", "UDP", 1053)),
              *[s for s in base.slices.values() if s.service_name != "kube-dns"]]
    now[0] = 5.0
    tracker.observe(model.Inventory(base.services.values(), slices))
    assert set(tracker.settle_by()) == {("kube-system", "kube-dns")}


def test_planner_carries_the_grace_window_to_checks() -> None:
    inv = cluster(n=2)
    p = planner.plan(inv, PS, settle_by={("team0", "app0"): 5000.0})
    assert {c.settle_by for c in p.dns if c.service == "app0"} == {5000.0}
    assert {c.settle_by for c in p.tcp if c.service == "app0" and c.path == "cluster_ip"} == {5000.0}
    assert {c.settle_by for c in p.dns if c.service == "app1"} == {0.0}


@pytest.mark.parametrize(("name", "expected"), [("app0", 1), ("app0.team0", 2), ("app0.team0.svc", 3),
                                                ("app0.team0.svc.cluster.local.", 1)])
def test_expected_queries(name: str, expected: int) -> None:
    inv = cluster(n=1)
    check = next(c for c in planner.plan(inv, PS).dns if c.service == "app0" and c.name == name and c.qtype == "A")
    assert planner.expected_queries(check, "cluster.local") == expected


def test_ip_valued_external_name_expects_nxdomain() -> None:
    ext = model.Service("shop", "byip", model.ServiceType.EXTERNAL_NAME, (), False, (), external_name="1.2.3.4")
    named = dataclasses.replace(ext, name="byname", external_name="api.example.com")
    p = planner.plan(model.Inventory([ext, named]), PS)
    assert {c.expect.kind for c in p.dns if c.service == "byip"} == {Expect.NXDOMAIN}
    assert {c.expect.describe() for c in p.dns if c.service == "byname" and c.qtype == "CNAME"} == {
        "api.example.com."}


def test_a_canary_with_many_endpoints_is_sharded_like_any_service() -> None:
    inv = cluster()
    big = model.Inventory(inv.services.values(), [
        *[s for s in inv.slices.values() if s.service_name != "svcprobe"],
        eps("monitoring", "svcprobe",
            *[f"198.19.{9 + i // 250}.{i % 250 + 1}" for i in range(assignment.CANARY_MAX_ENDPOINTS + 1)]),
    ])
    ts = assignment.AssignmentSettings(peers_service=("monitoring", "svcprobe"))
    assert ("monitoring", "svcprobe") in assignment.assign(inv, ts).canaries
    t = assignment.assign(big, ts)
    assert ("monitoring", "svcprobe") not in t.canaries
    assert t.selected == 61  # now one of the selected (sharded) Services


@pytest.mark.parametrize(("nameservers", "configured", "expected"), [
    pytest.param(("169.254.20.10",), "", ("169.254.20.10", 53), id="detected-link-local"),
    pytest.param(("198.18.0.10", "169.254.25.10:5353"), "", ("169.254.25.10", 5353), id="detected-second"),
    pytest.param(("198.18.0.10",), "", None, id="none"),
    pytest.param(("169.254.20.10",), "198.18.0.53", ("198.18.0.53", 53), id="configured-wins"),
])
def test_nodelocal_detection(nameservers: tuple[str, ...], configured: str, expected: tuple[str, int] | None) -> None:
    from agent import settings

    s = settings.load(overrides={"dns.nameservers": nameservers, "paths.nodelocal_address": configured})
    assert assignment.settings_from(s).nodelocal == expected
