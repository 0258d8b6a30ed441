"""agent.planner: search-list emulation, name forms, expected answers and TCP targets.

Ground truth: reference/k8s-dns.md §3.1 (kubelet search list), §3.2–3.5 and the cost table
§3.4 (candidate order under ndots, verified with glibc, musl and dnspython), §5.3 (expected
answers from API state), §6.2–6.4, and DESIGN §4.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest
import yaml

from agent import model, planner, resolvers
from agent.checks import DnsCheck, DnsExpectation, Expect, SrvRecord, TcpCheck
from agent.inventory import manifests
from tests.support.builders import (
    ZONE,
    endpoint,
    endpoint_slice,
    kubectl_dump,
    plan_settings,
    service,
    slice_obj,
    svc_obj,
)

Z = ZONE
X_SEARCH = (f"x.svc.{Z}", f"svc.{Z}", Z)  # a pod in namespace x, no host domains


# --------------------------------------------------------------------------- search emulation


@pytest.mark.parametrize(
    ("name", "search", "ndots", "expected"),
    [
        # §3.4 / §6.3 traces, search = x.svc.Z svc.Z Z, ndots 5
        pytest.param("web", X_SEARCH, 5,
                     [f"web.x.svc.{Z}.", f"web.svc.{Z}.", f"web.{Z}.", "web."], id="short"),
        pytest.param("web.y", X_SEARCH, 5,
                     [f"web.y.x.svc.{Z}.", f"web.y.svc.{Z}.", f"web.y.{Z}.", "web.y."], id="name.ns"),
        pytest.param("web.y.svc", X_SEARCH, 5,
                     [f"web.y.svc.x.svc.{Z}.", f"web.y.svc.svc.{Z}.", f"web.y.svc.{Z}.", "web.y.svc."],
                     id="name.ns.svc"),
        pytest.param(f"web.y.svc.{Z}", X_SEARCH, 5,  # 4 dots < 5: the whole walk first
                     [f"web.y.svc.{Z}.x.svc.{Z}.", f"web.y.svc.{Z}.svc.{Z}.", f"web.y.svc.{Z}.{Z}.",
                      f"web.y.svc.{Z}."], id="fqdn-without-dot"),
        pytest.param(f"web.y.svc.{Z}.", X_SEARCH, 5, [f"web.y.svc.{Z}."], id="absolute"),
        pytest.param("a.b.c.d.example.com", X_SEARCH, 5,  # 5 dots >= 5: as-is first
                     ["a.b.c.d.example.com.", f"a.b.c.d.example.com.x.svc.{Z}.",
                      f"a.b.c.d.example.com.svc.{Z}.", f"a.b.c.d.example.com.{Z}."], id="dots-equal-ndots"),
        pytest.param("api.example.com", X_SEARCH + ("corp.example", "ec2.internal"), 5,
                     [f"api.example.com.x.svc.{Z}.", f"api.example.com.svc.{Z}.", f"api.example.com.{Z}.",
                      "api.example.com.corp.example.", "api.example.com.ec2.internal.", "api.example.com."],
                     id="external-name-with-host-domains"),
        # other ndots values
        pytest.param("web.y", X_SEARCH, 1, ["web.y.", f"web.y.x.svc.{Z}.", f"web.y.svc.{Z}.", f"web.y.{Z}."],
                     id="ndots1-one-dot-as-is-first"),
        pytest.param("web", X_SEARCH, 1, [f"web.x.svc.{Z}.", f"web.svc.{Z}.", f"web.{Z}.", "web."],
                     id="ndots1-no-dot-searched"),
        pytest.param("web", X_SEARCH, 0, ["web.", f"web.x.svc.{Z}.", f"web.svc.{Z}.", f"web.{Z}."],
                     id="ndots0-always-as-is-first"),
        pytest.param("web.y", X_SEARCH, 2, [f"web.y.x.svc.{Z}.", f"web.y.svc.{Z}.", f"web.y.{Z}.", "web.y."],
                     id="ndots2-one-dot"),
        pytest.param("web.y.svc", X_SEARCH, 2,
                     ["web.y.svc.", f"web.y.svc.x.svc.{Z}.", f"web.y.svc.svc.{Z}.", f"web.y.svc.{Z}."],
                     id="ndots2-two-dots"),
        pytest.param(f"web.y.svc.{Z}", X_SEARCH, 15,
                     [f"web.y.svc.{Z}.x.svc.{Z}.", f"web.y.svc.{Z}.svc.{Z}.", f"web.y.svc.{Z}.{Z}.",
                      f"web.y.svc.{Z}."], id="ndots15"),
        pytest.param("web", (), 5, ["web."], id="empty-search-list"),
    ],
)
def test_search_candidates(name: str, search: tuple[str, ...], ndots: int, expected: list[str]) -> None:
    assert planner.search_candidates(name, search, ndots) == expected


@pytest.mark.parametrize("host_domains", [0, 1, 3])
@pytest.mark.parametrize(
    ("form", "cost"),
    [
        # queries until success for AF_UNSPEC (A+AAAA per candidate), §3.4; H = host domains
        pytest.param("short", lambda h: 2, id="short"),
        pytest.param("namespace", lambda h: 4, id="namespace"),
        pytest.param("svc", lambda h: 6, id="svc"),
        pytest.param("fqdn-without-dot", lambda h: 8 + 2 * h, id="fqdn-without-dot"),
        pytest.param("fqdn", lambda h: 2, id="fqdn"),
    ],
)
def test_cost_table(form: str, cost: Any, host_domains: int) -> None:
    """The candidate position of the real name reproduces the verified cost table."""
    host = tuple(f"h{i}.example" for i in range(host_domains))
    svc = service("web", "y")
    names = planner.form_names(svc, Z)
    names["fqdn-without-dot"] = names["fqdn"].rstrip(".")
    search = planner.pod_search_list("y", Z, host)  # a pod in the Service's namespace
    candidates = planner.search_candidates(names[form], search, 5)
    position = candidates.index(f"web.y.svc.{Z}.") + 1
    assert 2 * position == cost(host_domains)


@pytest.mark.parametrize("host_domains", [0, 2])
def test_failed_short_name_from_another_namespace_costs_2x_4_plus_h(host_domains: int) -> None:
    host = tuple(f"h{i}.example" for i in range(host_domains))
    candidates = planner.search_candidates("web", planner.pod_search_list("x", Z, host), 5)
    assert f"web.y.svc.{Z}." not in candidates
    assert 2 * len(candidates) == 2 * (4 + host_domains)


@pytest.mark.parametrize(
    ("namespace", "zone", "host", "expected"),
    [
        pytest.param("shop", Z, (), ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"), id="plain"),
        pytest.param("shop", Z, ("us-east-1.compute.internal", "corp.example"),
                     ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local",
                      "us-east-1.compute.internal", "corp.example"), id="host-domains-appended"),
        pytest.param("shop", Z, ("cluster.local", "corp.example", "corp.example", "svc.cluster.local"),
                     ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"),
                     id="duplicates-omitted"),
        pytest.param("kube-system", "k8s.example.internal", (),
                     ("kube-system.svc.k8s.example.internal", "svc.k8s.example.internal", "k8s.example.internal"),
                     id="custom-zone"),
    ],
)
def test_pod_search_list(namespace: str, zone: str, host: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert planner.pod_search_list(namespace, zone, host) == expected


def test_form_names() -> None:
    assert planner.form_names(service("web", "shop"), "k8s.example") == {
        "short": "web",
        "namespace": "web.shop",
        "svc": "web.shop.svc",
        "fqdn": "web.shop.svc.k8s.example.",
    }


# --------------------------------------------------------------------------- DNS checks


def _dns(plan: planner.Plan, qtype: str | None = None, form: str | None = None) -> list[DnsCheck]:
    return [c for c in plan.dns if (qtype is None or c.qtype == qtype) and (form is None or c.form == form)]


def _expect(plan: planner.Plan, qtype: str) -> set[DnsExpectation]:
    """The expectation for `qtype`, asserting every form agrees."""
    return {c.expect for c in _dns(plan, qtype)}


def test_every_form_and_qtype_with_the_pod_search_list() -> None:
    ps = plan_settings(ndots=4, host_search=("corp.example",), servers=(("127.0.0.53", 53), ("::1", 5353)),
                       path="cluster_ip")
    svc = service("web", "shop")
    p = planner.plan(model.Inventory([svc]), ps)
    assert [(c.form, c.qtype, c.name) for c in _dns(p) if c.qtype != "SRV"] == [
        ("short", "A", "web"), ("short", "AAAA", "web"),
        ("namespace", "A", "web.shop"), ("namespace", "AAAA", "web.shop"),
        ("svc", "A", "web.shop.svc"), ("svc", "AAAA", "web.shop.svc"),
        ("fqdn", "A", f"web.shop.svc.{Z}."), ("fqdn", "AAAA", f"web.shop.svc.{Z}."),
    ]
    for c in p.dns:
        assert (c.namespace, c.service, c.ndots, c.path) == ("shop", "web", 4, "cluster_ip")
        assert c.search == (f"shop.svc.{Z}", f"svc.{Z}", Z, "corp.example")
        assert c.servers == (("127.0.0.53", 53), ("::1", 5353))


def test_forms_and_qtypes_settings_restrict_the_checks() -> None:
    ps = plan_settings(forms=("fqdn",), qtypes=("AAAA",), srv=False)
    p = planner.plan(model.Inventory([service(cluster_ips=("fd00::10",))]), ps)
    assert [(c.form, c.qtype) for c in p.dns] == [("fqdn", "AAAA")]


@pytest.mark.parametrize(
    ("cluster_ips", "a", "aaaa"),
    [
        pytest.param(("198.18.0.10",), DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.10"})),
                     DnsExpectation(Expect.NODATA), id="ipv4-only-aaaa-nodata"),
        pytest.param(("fd00::10",), DnsExpectation(Expect.NODATA),
                     DnsExpectation(Expect.ANSWER, frozenset({"fd00::10"})), id="ipv6-only-a-nodata"),
        pytest.param(("198.18.0.10", "fd00::10"), DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.10"})),
                     DnsExpectation(Expect.ANSWER, frozenset({"fd00::10"})), id="dual-stack"),
        pytest.param(("fd00:0:0::a", "198.18.0.10"), DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.10"})),
                     DnsExpectation(Expect.ANSWER, frozenset({"fd00::a"})), id="dual-stack-v6-first-compressed"),
    ],
)
def test_cluster_ip_expectations(cluster_ips: tuple[str, ...], a: DnsExpectation, aaaa: DnsExpectation) -> None:
    # no endpoints at all: a ClusterIP Service still resolves (§1.4, §6.2)
    p = planner.plan(model.Inventory([service(cluster_ips=cluster_ips)]), plan_settings())
    assert _expect(p, "A") == {a}
    assert _expect(p, "AAAA") == {aaaa}
    assert len(_dns(p, "A")) == 4 and len(_dns(p, "AAAA")) == 4


def _headless_inventory(*slices: model.EndpointSlice, publish_not_ready: bool = False,
                        ports: tuple[tuple[str, str, int], ...] = (("http", "TCP", 80),)) -> model.Inventory:
    svc = service("db", headless=True, publish_not_ready=publish_not_ready, ports=ports)
    return model.Inventory([svc], slices)


HEADLESS_CASES = [
    pytest.param(
        [endpoint_slice("db-1", endpoint("198.19.0.1"), endpoint("198.19.0.2"), service="db"),
         endpoint_slice("db-2", endpoint("198.19.0.3"), endpoint("198.19.0.1"), service="db")],
        False, {"198.19.0.1", "198.19.0.2", "198.19.0.3"}, None, id="union-across-slices-deduplicated"),
    pytest.param(
        [endpoint_slice("db-1", endpoint("198.19.0.1"), endpoint("198.19.0.2", ready=False),
                        endpoint("198.19.0.4", ready=False), service="db")],
        False, {"198.19.0.1"}, None, id="not-ready-and-terminating-excluded"),
    pytest.param(
        [endpoint_slice("db-1", endpoint("198.19.0.1"), endpoint("198.19.0.2", ready=False), service="db")],
        # CoreDNS reads conditions.ready alone (plugin/kubernetes/object/endpoint.go); the
        # EndpointSlice controller folds publishNotReadyAddresses into it. A mirrored or
        # hand-made slice that says not ready is not served.
        True, {"198.19.0.1"}, None, id="publishNotReadyAddresses-does-not-override-conditions-ready"),
    pytest.param(
        [endpoint_slice("db-1", endpoint("198.19.0.1", "198.19.0.9"), service="db")],
        False, {"198.19.0.1", "198.19.0.9"}, None, id="every-address-of-an-endpoint"),
    pytest.param(
        [endpoint_slice("db-4", endpoint("198.19.0.1"), service="db"),
         endpoint_slice("db-6", endpoint("fd00::1"), endpoint("fd00::2", ready=False), address_type="IPv6",
                        service="db")],
        False, {"198.19.0.1"}, {"fd00::1"}, id="dual-stack-headless"),
    pytest.param(
        [endpoint_slice("db-6", endpoint("fd00::1"), address_type="IPv6", service="db")],
        False, None, {"fd00::1"}, id="ipv6-only-a-nodata"),
    pytest.param(
        [endpoint_slice("db-1", endpoint("198.19.0.1"), service="db"),
         endpoint_slice("db-6", endpoint("fd00::1", ready=False), address_type="IPv6", service="db")],
        False, {"198.19.0.1"}, None, id="family-with-only-not-ready-is-nodata"),
    pytest.param(
        [endpoint_slice("db-1", endpoint("198.19.0.1"), service="db"),
         endpoint_slice("other", endpoint("198.19.9.9"), service="web"),
         endpoint_slice("db-x", endpoint("198.19.9.8"), service="db", namespace="elsewhere"),
         endpoint_slice("nolabel", endpoint("198.19.9.7"), service="")],
        False, {"198.19.0.1"}, None, id="only-own-slices-by-label-and-namespace"),
]


@pytest.mark.parametrize(("slices", "pna", "a", "aaaa"), HEADLESS_CASES)
def test_headless_expectations(slices: list[model.EndpointSlice], pna: bool, a: set[str] | None,
                               aaaa: set[str] | None) -> None:
    p = planner.plan(_headless_inventory(*slices, publish_not_ready=pna), plan_settings())

    def exp(addrs: set[str] | None) -> DnsExpectation:
        return DnsExpectation(Expect.ANSWER, frozenset(addrs)) if addrs else DnsExpectation(Expect.NODATA)

    assert _expect(p, "A") == {exp(a)}
    assert _expect(p, "AAAA") == {exp(aaaa)}


def test_headless_from_api_objects_counts_nil_ready() -> None:
    """conditions.ready absent or null means ready (§5.2), end to end from API dicts."""
    svc = svc_obj("db", clusterIP="None", clusterIPs=["None"])
    slices = [
        slice_obj("db-1", service="db", endpoints=[
            {"addresses": ["198.19.0.1"]},                                   # no conditions
            {"addresses": ["198.19.0.2"], "conditions": {"ready": None}},    # null
            {"addresses": ["198.19.0.3"], "conditions": {"ready": False, "serving": True, "terminating": True}},
        ]),
        slice_obj("db-2", service="db", endpoints=[
            {"addresses": ["198.19.0.2"], "conditions": {}},                 # the same pod again
            {"addresses": ["198.19.0.4"], "conditions": {"ready": True}},
        ]),
    ]
    res = manifests.parse_documents(yaml.safe_dump_all([svc, *slices]))
    assert res.ok, res.errors
    p = planner.plan(res.inventory, plan_settings())
    assert _expect(p, "A") == {DnsExpectation(Expect.ANSWER, frozenset({"198.19.0.1", "198.19.0.2", "198.19.0.4"}))}
    assert _expect(p, "AAAA") == {DnsExpectation(Expect.NODATA)}
    assert sorted(c.address for c in p.tcp) == ["198.19.0.1", "198.19.0.2", "198.19.0.4"]


@pytest.mark.parametrize(
    "slices",
    [
        pytest.param([], id="no-slices"),
        pytest.param([endpoint_slice("db-1", service="db")], id="empty-slice"),
        pytest.param([endpoint_slice("db-1", endpoint("198.19.0.1", ready=False), service="db"),
                      endpoint_slice("db-6", endpoint("fd00::1", ready=False),
                                     address_type="IPv6", service="db")], id="only-not-ready-both-families"),
        pytest.param([endpoint_slice("db-f", model.Endpoint((), False), address_type="FQDN",
                                     service="db")], id="only-not-ready-fqdn-slice"),
    ],
)
def test_headless_without_ready_endpoints_is_nxdomain_for_both_families(slices: list[model.EndpointSlice]) -> None:
    p = planner.plan(_headless_inventory(*slices), plan_settings())
    assert _expect(p, "A") == {DnsExpectation(Expect.NXDOMAIN)}
    assert _expect(p, "AAAA") == {DnsExpectation(Expect.NXDOMAIN)}


# --------------------------------------------------------------------------- SRV


def _srv(plan: planner.Plan) -> dict[str, DnsExpectation]:
    checks = _dns(plan, "SRV")
    assert all(c.form == "fqdn" for c in checks)
    return {c.name: c.expect for c in checks}


def test_srv_only_for_named_ports_cluster_ip_targets_the_service() -> None:
    svc = service("kube-dns", "kube-system", ports=(("dns", "UDP", 53), ("dns-tcp", "TCP", 53),
                                                     ("metrics", "TCP", 9153)))
    sl = endpoint_slice("kube-dns-1", endpoint("198.19.0.1"), service="kube-dns", namespace="kube-system",
                        ports=(("dns", "UDP", 5353), ("dns-tcp", "TCP", 5353), ("metrics", "TCP", 9999)))
    p = planner.plan(model.Inventory([svc], [sl]), plan_settings())
    fqdn = f"kube-dns.kube-system.svc.{Z}."
    assert _srv(p) == {
        # the Service port, never the slice/target port; the target is the Service name
        f"_dns._udp.{fqdn}": DnsExpectation(Expect.ANSWER, srv=(SrvRecord(53, fqdn),)),
        f"_dns-tcp._tcp.{fqdn}": DnsExpectation(Expect.ANSWER, srv=(SrvRecord(53, fqdn),)),
        f"_metrics._tcp.{fqdn}": DnsExpectation(Expect.ANSWER, srv=(SrvRecord(9153, fqdn),)),
    }


@pytest.mark.parametrize(
    "ports",
    [
        pytest.param((("", "TCP", 80),), id="single-unnamed-port"),
        pytest.param((), id="no-ports"),
    ],
)
def test_no_srv_without_named_ports(ports: tuple[tuple[str, str, int], ...]) -> None:
    p = planner.plan(model.Inventory([service(ports=ports)]), plan_settings())
    assert _dns(p, "SRV") == []


def test_srv_disabled() -> None:
    p = planner.plan(model.Inventory([service()]), plan_settings(srv=False))
    assert _dns(p, "SRV") == []


def test_srv_service_name_case_is_lowered() -> None:
    p = planner.plan(model.Inventory([service()]), plan_settings(cluster_domain="Cluster.Local"))
    (exp,) = _srv(p).values()
    assert exp.srv == (SrvRecord(80, "web.shop.svc.cluster.local."),)


def test_headless_srv_uses_slice_port_hostnames_and_wildcards() -> None:
    svc = service("db", headless=True, ports=(("pg", "TCP", 5432), ("metrics", "TCP", 9187), ("", "TCP", 1)))
    slices = [
        endpoint_slice("db-a", endpoint("198.19.0.1", hostname="db-0"), endpoint("198.19.0.2", hostname="db-1"),
                       endpoint("198.19.0.3", ready=False, hostname="db-2"), service="db",
                       ports=(("pg", "TCP", 6432), ("metrics", "TCP", 9999))),
        # pods whose named targetPort resolved differently land in another slice (§5.2)
        endpoint_slice("db-b", endpoint("198.19.0.4"), endpoint("198.19.0.5"), service="db",
                       ports=(("pg", "TCP", 7432),)),
    ]
    p = planner.plan(model.Inventory([svc], slices), plan_settings())
    suffix = f"db.shop.svc.{Z}."
    srv = _srv(p)
    assert set(srv) == {f"_pg._tcp.{suffix}", f"_metrics._tcp.{suffix}"}  # the unnamed port has none
    pg = srv[f"_pg._tcp.{suffix}"]
    assert pg.kind is Expect.ANSWER and pg.srv_suffix == suffix
    # N ready endpoints x the port = N records: two named, two hostname-less (one each)
    assert sorted(pg.srv, key=lambda r: (r.port, r.target)) == [
        SrvRecord(6432, f"db-0.{suffix}"), SrvRecord(6432, f"db-1.{suffix}"),
        SrvRecord(7432, ""), SrvRecord(7432, ""),
    ]
    metrics = srv[f"_metrics._tcp.{suffix}"]
    assert sorted(metrics.srv, key=lambda r: r.target) == [SrvRecord(9999, f"db-0.{suffix}"),
                                                             SrvRecord(9999, f"db-1.{suffix}")]


def test_headless_srv_one_wildcard_per_hostname_less_endpoint() -> None:
    """CoreDNS names a hostname-less endpoint by its dashed IP: one SRV RR per endpoint (§1.2, §5.3)."""
    slices = [endpoint_slice("db-a", *(endpoint(f"198.19.0.{i}") for i in range(1, 4)), service="db",
                             ports=(("http", "TCP", 8080),)),
              # the same address again in another slice is the same endpoint
              endpoint_slice("db-b", endpoint("198.19.0.1"), service="db", ports=(("http", "TCP", 8080),))]
    p = planner.plan(_headless_inventory(*slices), plan_settings())
    (exp,) = _srv(p).values()
    assert exp.srv == (SrvRecord(8080, ""),) * 3


def test_headless_srv_same_hostname_is_one_record() -> None:
    """An endpoint with a hostname and two addresses is one SRV target (CoreDNS dedupes target+port)."""
    sl = endpoint_slice("db-a", endpoint("198.19.0.1", "198.19.0.2", hostname="db-0"), service="db")
    p = planner.plan(_headless_inventory(sl), plan_settings())
    (exp,) = _srv(p).values()
    assert exp.srv == (SrvRecord(8080, f"db-0.db.shop.svc.{Z}."),)


@pytest.mark.parametrize(
    "slices",
    [
        pytest.param([], id="no-endpoints"),
        pytest.param([endpoint_slice("db-a", endpoint("198.19.0.1", ready=False), service="db")], id="none-ready"),
        pytest.param([endpoint_slice("db-a", endpoint("198.19.0.1"), service="db", ports=(("other", "TCP", 1),))],
                     id="port-not-in-slice"),
        pytest.param([endpoint_slice("db-a", endpoint("198.19.0.1"), service="db", ports=(("http", "UDP", 8080),))],
                     id="protocol-differs"),
    ],
)
def test_headless_srv_without_matching_ready_endpoint_is_nxdomain(slices: list[model.EndpointSlice]) -> None:
    p = planner.plan(_headless_inventory(*slices), plan_settings())
    assert _srv(p)[f"_http._tcp.db.shop.svc.{Z}."] == DnsExpectation(Expect.NXDOMAIN)


def test_named_ports_only_the_slices_list_get_srv_checks_and_sctp_is_asked() -> None:
    sl = endpoint_slice("db-a", endpoint("198.19.0.1", hostname="db-0"), service="db",
                        ports=(("http", "TCP", 8080), ("metrics", "TCP", 9100), ("assoc", "SCTP", 9999)))
    srv = _srv(planner.plan(_headless_inventory(sl), plan_settings()))
    assert set(srv) == {f"_{n}.db.shop.svc.{Z}." for n in ("http._tcp", "metrics._tcp", "assoc._sctp")}
    assert srv[f"_metrics._tcp.db.shop.svc.{Z}."].srv == (SrvRecord(9100, f"db-0.db.shop.svc.{Z}."),)


def test_hostname_records_and_ptr_of_a_statefulset_are_bounded() -> None:
    eps = [endpoint(f"198.19.0.{i + 1}", hostname=f"db-{i}") for i in range(5)]
    sl = endpoint_slice("db-a", *eps, service="db")
    p = planner.plan(_headless_inventory(sl), plan_settings(hostnames_per_service=3, ptr=True))
    names = {(c.form, c.qtype, c.name): c.expect for c in p.dns if c.form in ("hostname", "reverse")}
    first = DnsExpectation(Expect.ANSWER, frozenset({"198.19.0.1"}))
    assert names[("hostname", "A", f"db-0.db.shop.svc.{Z}.")] == first
    assert names[("hostname", "AAAA", f"db-0.db.shop.svc.{Z}.")] == DnsExpectation(Expect.NODATA)
    assert {n for f, _, n in names if f == "hostname"} == {f"db-{i}.db.shop.svc.{Z}." for i in range(3)}
    ptr = names[("reverse", "PTR", "1.0.19.198.in-addr.arpa.")]
    assert ptr.records == {f"db-0.db.shop.svc.{Z}."} and ptr.subset
    assert len([n for f, _, n in names if f == "reverse"]) == 3
    cip = planner.plan(model.Inventory([service("web")], []), plan_settings(ptr=True))
    (rev,) = [c for c in cip.dns if c.qtype == "PTR"]
    assert rev.name == "10.0.18.198.in-addr.arpa." and rev.expect.records == {f"web.shop.svc.{Z}."}
    assert not rev.expect.subset


def test_headless_srv_of_a_slice_port_without_number_is_nodata() -> None:
    """CoreDNS keeps the port as -1 and leaves such records out: the name exists, no SRV."""
    nil = endpoint_slice("db-a", endpoint("198.19.0.1"), service="db", ports=(("http", "TCP", None),))
    assert list(_srv(planner.plan(_headless_inventory(nil), plan_settings())).values()) == [
        DnsExpectation(Expect.NODATA)]
    numbered = endpoint_slice("db-b", endpoint("198.19.0.2"), service="db")
    (exp,) = _srv(planner.plan(_headless_inventory(nil, numbered), plan_settings())).values()
    assert exp.kind is Expect.ANSWER and [r.port for r in exp.srv] == [8080]


def test_one_address_with_two_hostnames_in_two_slices_is_two_srv_targets() -> None:
    left = endpoint_slice("db-a", endpoint("198.19.0.1", hostname="left"), service="db")
    right = endpoint_slice("db-b", endpoint("198.19.0.1", hostname="right"), service="db")
    p = planner.plan(_headless_inventory(left, right), plan_settings())
    (exp,) = _srv(p).values()
    assert sorted(r.target for r in exp.srv) == [f"left.db.shop.svc.{Z}.", f"right.db.shop.svc.{Z}."]
    assert _expect(p, "A") == {DnsExpectation(Expect.ANSWER, frozenset({"198.19.0.1"}))}
    assert len([c for c in p.tcp if c.path == "endpoint"]) == 1  # one address, probed once


def test_fqdn_slices_are_counted_not_checked() -> None:
    fqdn = endpoint_slice("db-f", model.Endpoint(("backend.example",), True), address_type="FQDN",  # type: ignore[arg-type]
                          service="db")
    p = planner.plan(_headless_inventory(fqdn), plan_settings())
    assert not p.dns and p.capped == {"fqdn_endpoints": 1}


def test_coredns_options_change_what_is_expected() -> None:
    ready = endpoint_slice("db-a", endpoint("198.19.0.1", hostname="db-0"), service="db")
    headless = _headless_inventory(ready)
    noendpoints = dataclasses.replace(plan_settings(), noendpoints=True)
    assert {c.expect.kind for c in planner.plan(headless, noendpoints).dns} == {Expect.NXDOMAIN}
    empty = model.Inventory([service("web", cluster_ips=("198.18.0.10",))], [])
    ignore = dataclasses.replace(plan_settings(), ignore_empty_service=True)
    assert {c.expect.kind for c in planner.plan(empty, ignore).dns} == {Expect.NXDOMAIN}
    assert Expect.ANSWER in {c.expect.kind for c in planner.plan(empty, plan_settings()).dns}
    only = dataclasses.replace(plan_settings(), dns_namespaces=frozenset({"other"}))
    p = planner.plan(empty, only)
    assert not p.dns and p.tcp and p.capped == {"not_in_cluster_dns": 1}


def test_headless_srv_publish_not_ready_follows_the_slices() -> None:
    # The controller marks every endpoint ready for such a Service; what the slice says counts.
    ready = endpoint_slice("db-a", endpoint("198.19.0.1", ready=True, hostname="db-0"), service="db")
    (exp,) = _srv(planner.plan(_headless_inventory(ready, publish_not_ready=True), plan_settings())).values()
    assert exp.srv == (SrvRecord(8080, f"db-0.db.shop.svc.{Z}."),)
    not_ready = endpoint_slice("db-a", endpoint("198.19.0.1", ready=False, hostname="db-0"), service="db")
    (exp,) = _srv(planner.plan(_headless_inventory(not_ready, publish_not_ready=True), plan_settings())).values()
    assert exp == DnsExpectation(Expect.NXDOMAIN)


# --------------------------------------------------------------------------- ExternalName


def test_external_name_is_a_cname_for_every_form_and_an_address_through_it() -> None:
    svc = service("legacy", type=model.ServiceType.EXTERNAL_NAME, external_name="api.example.com",
                  ports=(("https", "TCP", 443),))
    p = planner.plan(model.Inventory([svc]), plan_settings())
    assert [(c.form, c.qtype, c.name) for c in p.dns] == [
        ("short", "CNAME", "legacy"), ("namespace", "CNAME", "legacy.shop"),
        ("svc", "CNAME", "legacy.shop.svc"), ("fqdn", "CNAME", f"legacy.shop.svc.{Z}."),
        ("fqdn", "A", f"legacy.shop.svc.{Z}."),  # what applications ask
    ]
    assert {c.expect for c in p.dns if c.qtype == "CNAME"} == {
        DnsExpectation(Expect.ANSWER, frozenset({"api.example.com."}))}
    assert [c.expect for c in p.dns if c.qtype == "A"] == [DnsExpectation(Expect.RESOLVES)]  # upstream's
    assert p.tcp == () and p.not_probed_ports == 0


def test_an_external_name_inside_the_cluster_answers_what_its_target_service_answers() -> None:
    alias = service("alias", type=model.ServiceType.EXTERNAL_NAME, external_name=f"web.shop.svc.{Z}")
    web = service("web", cluster_ips=("198.18.0.10",))
    through = {c.qtype: c.expect for c in planner.plan(model.Inventory([alias, web]), plan_settings()).dns
               if c.service == "alias" and c.qtype != "CNAME"}
    assert through == {"A": DnsExpectation(Expect.ANSWER, frozenset({"198.18.0.10"})),
                       "AAAA": DnsExpectation(Expect.NODATA)}
    # A target no Service has points applications nowhere: some address is still required.
    alone = [c.expect for c in planner.plan(model.Inventory([alias]), plan_settings()).dns if c.qtype == "A"]
    assert alone == [DnsExpectation(Expect.RESOLVES)]


# --------------------------------------------------------------------------- TCP


def _tcp(plan: planner.Plan, target: str | None = None) -> list[tuple[str, str, int, str, str, bool]]:
    return [(c.path, c.address, c.port, c.family, c.port_name, c.no_endpoints) for c in plan.tcp
            if target is None or c.path == target]


def test_tcp_every_tcp_port_on_every_cluster_ip() -> None:
    svc = service(cluster_ips=("198.18.0.10", "fd00::10"),
                  ports=(("http", "TCP", 80), ("https", "TCP", 443), ("dns", "UDP", 53), ("sig", "SCTP", 9)))
    sl = endpoint_slice("web-1", endpoint("198.19.0.1"), ports=(("http", "TCP", 8080),))
    p = planner.plan(model.Inventory([svc], [sl]), plan_settings())
    assert _tcp(p, "cluster_ip") == [
        ("cluster_ip", "198.18.0.10", 80, "ipv4", "http", False),
        ("cluster_ip", "198.18.0.10", 443, "ipv4", "https", False),
        ("cluster_ip", "fd00::10", 80, "ipv6", "http", False),
        ("cluster_ip", "fd00::10", 443, "ipv6", "https", False),
    ]
    assert p.not_probed_ports == 2  # the UDP and the SCTP port


def test_tcp_endpoints_on_the_slice_port_never_the_target_port() -> None:
    svc = service(ports=(("http", "TCP", 80), ("dns", "UDP", 53)))
    slices = [
        endpoint_slice("web-1", endpoint("198.19.0.1"), endpoint("198.19.0.2", ready=False),
                       ports=(("http", "TCP", 8080), ("dns", "UDP", 5353))),
        endpoint_slice("web-2", endpoint("198.19.0.3"), ports=(("http", "TCP", 8081),)),
        endpoint_slice("web-6", endpoint("fd00::3"), address_type="IPv6", ports=(("http", "TCP", 8080),)),
    ]
    p = planner.plan(model.Inventory([svc], slices), plan_settings())
    assert _tcp(p, "endpoint") == [
        ("endpoint", "198.19.0.1", 8080, "ipv4", "http", False),
        ("endpoint", "198.19.0.3", 8081, "ipv4", "http", False),
        ("endpoint", "fd00::3", 8080, "ipv6", "http", False),
    ]
    assert p.not_probed_ports == 1


def test_tcp_endpoint_with_nil_slice_port_is_not_probed() -> None:
    sl = endpoint_slice("web-1", endpoint("198.19.0.1"), ports=(("", "TCP", None),))
    p = planner.plan(model.Inventory([service()], [sl]), plan_settings())
    assert _tcp(p, "endpoint") == []


def test_tcp_same_address_in_two_slices_is_probed_once() -> None:
    slices = [endpoint_slice("web-1", endpoint("198.19.0.1")),
              endpoint_slice("web-2", endpoint("198.19.0.1"), endpoint("198.19.0.2")),
              endpoint_slice("web-3", endpoint("198.19.0.1"), ports=(("http", "TCP", 8080), ("admin", "TCP", 9000)))]
    p = planner.plan(model.Inventory([service()], slices), plan_settings())
    assert [(a, port) for _, a, port, *_ in _tcp(p, "endpoint")] == [
        ("198.19.0.1", 8080), ("198.19.0.1", 9000), ("198.19.0.2", 8080)]


def test_tcp_publish_not_ready_goes_by_the_slices_like_kube_proxy() -> None:
    svc = service(publish_not_ready=True)
    sl = endpoint_slice("web-1", endpoint("198.19.0.1", ready=False))
    p = planner.plan(model.Inventory([svc], [sl]), plan_settings())
    assert _tcp(p, "endpoint") == []
    assert [ne for *_, ne in _tcp(p, "cluster_ip")] == [True]


@pytest.mark.parametrize(
    "slices",
    [
        pytest.param([], id="no-slices"),
        pytest.param([endpoint_slice("web-1", endpoint("198.19.0.1", ready=False),
                                     endpoint("198.19.0.2", ready=False))], id="none-ready"),
    ],
)
def test_tcp_no_endpoints_flag(slices: list[model.EndpointSlice]) -> None:
    p = planner.plan(model.Inventory([service(cluster_ips=("198.18.0.10", "fd00::10"))], slices), plan_settings())
    assert [(a, ne) for _, a, _, _, _, ne in _tcp(p)] == [("198.18.0.10", True), ("fd00::10", True)]


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        pytest.param(0, ["198.19.0.1", "198.19.0.1", "198.19.0.2", "198.19.0.2", "198.19.0.3", "198.19.0.3"],
                     id="0-means-all"),
        pytest.param(2, ["198.19.0.1", "198.19.0.1", "198.19.0.2", "198.19.0.2"], id="cap-counts-addresses-not-ports"),
        pytest.param(1, ["198.19.0.1", "198.19.0.1"], id="cap-1"),
        pytest.param(5, ["198.19.0.1", "198.19.0.1", "198.19.0.2", "198.19.0.2", "198.19.0.3", "198.19.0.3"],
                     id="cap-above-count"),
    ],
)
def test_tcp_max_endpoints_per_service(cap: int, expected: list[str]) -> None:
    sl = endpoint_slice("web-1", *(endpoint(f"198.19.0.{i}") for i in (3, 1, 2)),
                        ports=(("http", "TCP", 8080), ("admin", "TCP", 9000)))
    p = planner.plan(model.Inventory([service()], [sl]), plan_settings(max_endpoints_per_service=cap))
    assert [a for _, a, *_ in _tcp(p, "endpoint")] == expected
    assert len(_tcp(p, "cluster_ip")) == 1  # the cap is about endpoints only


def test_headless_has_no_cluster_ip_checks() -> None:
    sl = endpoint_slice("db-1", endpoint("198.19.0.1"), service="db")
    p = planner.plan(_headless_inventory(sl), plan_settings())
    assert _tcp(p) == [("endpoint", "198.19.0.1", 8080, "ipv4", "http", False)]


def test_tcp_disabled() -> None:
    svc = service(ports=(("http", "TCP", 80), ("dns", "UDP", 53)))
    p = planner.plan(model.Inventory([svc], [endpoint_slice("web-1", endpoint("198.19.0.1"))]),
                     plan_settings(tcp=False))
    assert p.tcp == () and p.not_probed_ports == 0
    assert len(p) == len(p.dns) > 0


# --------------------------------------------------------------------------- whole plans


def test_plan_order_is_stable_and_services_can_be_chosen() -> None:
    inv = model.Inventory([service("b", "ns2"), service("a", "ns2"), service("z", "ns1")])
    p = planner.plan(inv, plan_settings())
    assert list(dict.fromkeys((c.namespace, c.service) for c in p.dns)) == [("ns1", "z"), ("ns2", "a"), ("ns2", "b")]
    assert planner.plan(inv, plan_settings()) == p
    only = planner.plan(inv, plan_settings(), services=[inv.services[("ns2", "a")]])
    assert {(c.namespace, c.service) for c in (*only.dns, *only.tcp)} == {("ns2", "a")}
    assert len(p) == len(p.dns) + len(p.tcp)


def test_check_keys_are_unique() -> None:
    inv = manifests.parse_documents(kubectl_dump()).inventory
    p = planner.plan(inv, plan_settings())
    keys = [c.key for c in (*p.dns, *p.tcp)]
    assert len(keys) == len(set(keys))


def test_plan_of_the_kubectl_dump() -> None:
    """End to end over the hand-written dump: the expectations a reviewer can check by eye."""
    inv = manifests.parse_documents(kubectl_dump()).inventory
    p = planner.plan(inv, plan_settings())

    def exp(ns: str, svc: str, qtype: str) -> set[str]:
        return {c.expect.describe() for c in p.dns if (c.namespace, c.service, c.qtype) == (ns, svc, qtype)}

    assert exp("shop", "web", "A") == {"198.18.12.34"}
    assert exp("shop", "web", "AAAA") == {"fd00:10:96::1234"}
    assert exp("shop", "db", "A") == {"198.19.1.30 198.19.3.32"}
    assert exp("shop", "db", "AAAA") == {"NODATA"}
    assert exp("shop", "db", "SRV") == {f"5433:db-0.db.shop.svc.{Z}. 5433:db-2.db.shop.svc.{Z}."}
    assert exp("shop", "peers", "A") == {"198.19.1.40 198.19.2.41"}
    assert exp("shop", "legacy-api", "CNAME") == {"api.example.com."}
    assert exp("shop", "external", "A") == {"198.18.9.9"}
    assert exp("kube-system", "kube-dns", "SRV") == {f"53:kube-dns.kube-system.svc.{Z}.",
                                                     f"9153:kube-dns.kube-system.svc.{Z}."}
    tcp = {(c.namespace, c.service, c.path, c.address, c.port, c.no_endpoints) for c in p.tcp}
    assert ("shop", "gateway", "cluster_ip", "198.18.7.7", 80, True) in tcp
    assert ("shop", "web", "endpoint", "198.19.3.23", 8081, False) in tcp
    assert not any(c.address == "198.19.2.22" for c in p.tcp)  # terminating
    assert not any(c.service in ("legacy-api",) for c in p.tcp)
    assert {(c.address, c.port) for c in p.tcp if c.service == "kube-dns"} == {
        ("198.18.0.10", 53), ("198.18.0.10", 9153), ("198.19.1.11", 53), ("198.19.1.11", 9153),
        ("198.19.2.12", 53), ("198.19.2.12", 9153)}
    assert p.not_probed_ports == 1  # kube-dns's UDP port
    assert all(isinstance(c, TcpCheck) for c in p.tcp)


@pytest.mark.parametrize(("length", "asked"), [(62, True), (63, False), (64, True)])
def test_srv_of_a_port_name_too_long_for_a_label_is_not_asked(length: int, asked: bool) -> None:
    """The API allows 63-character port names; `_<name>` then has 64 characters, more than a
    DNS label may: no resolver can ask that SRV name, so it is not a check (it was reported
    as `error: cannot be asked`, a false alarm on a valid Service). A 64-character name is
    invalid input: its check stays and reports it (tests/reliability/test_hostile_input.py)."""
    name = "p" * length
    svc = service(ports=((name, "TCP", 80),))
    p = planner.plan(model.Inventory([svc], []), plan_settings())
    assert [c.name.split(".")[0] for c in p.dns if c.qtype == "SRV"] == ([f"_{name}"] if asked else [])


def test_an_expected_nxdomain_is_judged_on_cluster_zone_names_only() -> None:
    """A headless Service with no ready endpoint: cluster DNS must say NXDOMAIN for the names
    in its zone; the node's own search domains and the bare name are the upstream resolver's
    (issue 11, item 1), so they are not asked. A positive expectation keeps the pod's walk."""
    ps = plan_settings(host_search=("corp.example",))
    empty = _headless_inventory()  # no slices at all
    nx = [c for c in planner.plan(empty, ps).dns if c.qtype == "A"]
    for c in nx:
        walk = resolvers.plan(c.name, c.search, c.ndots, c.zone, c.resolvers, zone_only=c.zone_only).candidates
        assert walk and all(n.endswith(f".{Z}.") for n in walk), (c.form, walk)
        assert planner.expected_queries(c, Z) == len(walk)
    assert {c.form for c in nx if c.zone_only} == {"short", "namespace", "svc"}
    assert "corp.example" in nx[0].search  # the pod's search list, of which only the zone is asked
    ready = _headless_inventory(endpoint_slice("db-1", endpoint("198.19.0.1"), service="db"))
    short = next(c for c in planner.plan(ready, ps).dns if c.form == "short" and c.qtype == "A")
    assert not short.zone_only and "corp.example" in short.search


def test_internal_traffic_policy_local_probes_the_cluster_ip_only_where_an_endpoint_runs() -> None:
    svc = dataclasses.replace(service("web", cluster_ips=("198.18.0.10",)), internal_traffic_policy="Local")
    here = endpoint_slice("web-a", dataclasses.replace(endpoint("198.19.0.1"), node="node1"), service="web")
    inv = model.Inventory([svc], [here])
    on = {n: next(c for c in planner.plan(inv, dataclasses.replace(plan_settings(), node_name=n)).tcp
                  if c.path == "cluster_ip") for n in ("node1", "node2", "")}
    assert not on["node1"].no_endpoints  # the local endpoint answers through kube-proxy
    assert on["node2"].no_endpoints and on["node2"].local_only  # dropped there by design
    assert on[""].no_endpoints and on[""].local_only  # an unknown node cannot be judged
    cluster = model.Inventory([dataclasses.replace(svc, internal_traffic_policy="Cluster")], [here])
    assert not next(c for c in planner.plan(cluster, dataclasses.replace(plan_settings(), node_name="node2")).tcp
                    if c.path == "cluster_ip").no_endpoints


def _external(svc: model.Service, ready_on: str = "node1", **kw: Any) -> list[TcpCheck]:
    sl = endpoint_slice("web-a", dataclasses.replace(endpoint("198.19.0.1"), node=ready_on), service="web")
    ps = dataclasses.replace(plan_settings(), node_name="node2", host_ip="198.18.100.2", **kw)
    return [c for c in planner.plan(model.Inventory([svc], [sl]), ps).tcp if c.path in ("node_port", "load_balancer")]


def test_node_ports_are_probed_on_this_nodes_address_and_load_balancer_ips_from_inside() -> None:
    ports = (model.ServicePort("http", "TCP", 80, node_port=30080),
             model.ServicePort("dns", "UDP", 53, node_port=30053))
    lb = dataclasses.replace(service("web"), type=model.ServiceType.LOAD_BALANCER, ports=ports,
                             load_balancer_ips=(ipaddress.ip_address("198.18.200.1"),))
    checks = _external(lb)
    assert {(c.path, c.address, c.port, c.no_endpoints) for c in checks} == {
        ("node_port", "198.18.100.2", 30080, False), ("load_balancer", "198.18.200.1", 80, False)}
    assert _external(lb, node_ports=False, load_balancers=False) == []
    assert [c.path for c in _external(dataclasses.replace(lb, type=model.ServiceType.CLUSTER_IP))] == []
    # externalTrafficPolicy Local: this node (node2) has no ready endpoint: dropped by design
    local = dataclasses.replace(lb, external_traffic_policy="Local")
    assert all(c.no_endpoints and c.local_only and c.policy == "external" for c in _external(local))
    assert not any(c.no_endpoints for c in _external(local, ready_on="node2"))


def test_the_cluster_dns_service_carries_the_dns_version_canary() -> None:
    dns = service("kube-dns", "kube-system", cluster_ips=("198.18.0.10",))
    inv = model.Inventory([dns, service("web")], [])
    p = planner.plan(inv, dataclasses.replace(plan_settings(), dns_service=("kube-system", "kube-dns")))
    (txt,) = [c for c in p.dns if c.qtype == "TXT"]
    assert (txt.service, txt.form, txt.name, txt.expect) == (
        "kube-dns", "version", f"dns-version.{Z}.", DnsExpectation(Expect.RESOLVES))
    assert not [c for c in planner.plan(inv, plan_settings()).dns if c.qtype == "TXT"]
