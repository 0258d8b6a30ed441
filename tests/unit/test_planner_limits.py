"""The planner stays bounded for anything the API accepts: checks per Service, ports per
Service, checks per sweep, one address per endpoint; what a limit leaves out is counted."""

from __future__ import annotations

import ipaddress
import itertools

from agent import model, planner
from tests.support.builders import endpoint, endpoint_slice, plan_settings, service


def addresses(n: int, start: int = 0) -> list[str]:
    base = int(ipaddress.ip_address("198.18.0.0"))
    return [str(ipaddress.ip_address(base + start + i)) for i in range(n)]


def big_slice(name: str, service_name: str, n_endpoints: int, n_addresses: int, n_ports: int) -> model.EndpointSlice:
    """An EndpointSlice at the API's limits: up to 1,000 endpoints x 100 addresses, 100 ports."""
    addrs = iter(addresses(n_endpoints * n_addresses))
    eps = [endpoint(*itertools.islice(addrs, n_addresses)) for _ in range(n_endpoints)]
    ports = tuple((f"p{i}", "TCP", 10000 + i) for i in range(n_ports))
    return endpoint_slice(name, *eps, service=service_name, ports=ports)


def test_only_the_first_address_of_an_endpoint_is_connected_to() -> None:
    inv = model.Inventory([service("web")], [big_slice("web-1", "web", 3, 4, 1)])
    p = planner.plan(inv, plan_settings(forms=(), qtypes=(), srv=False))
    endpoint_targets = [c.address for c in p.tcp if c.path == "endpoint"]
    assert endpoint_targets == [addresses(12)[0], addresses(12)[4], addresses(12)[8]]


def test_checks_per_service_keeps_dns_first_and_cuts_tcp() -> None:
    inv = model.Inventory([service("web", ports=(("http", "TCP", 80),))], [big_slice("web-1", "web", 1000, 1, 5)])
    ps = plan_settings(max_checks_per_service=50)
    p = planner.plan(inv, ps)
    dns = [c for c in p.dns if c.service == "web"]
    assert len(dns) == 9  # 4 forms x A/AAAA + SRV: all kept
    assert len(dns) + len(p.tcp) == 50
    assert p.capped == {"checks_per_service": 1}
    uncapped = planner.plan(inv, plan_settings())
    assert len(uncapped.tcp) == 1 + 1000 * 5 and not uncapped.capped


def test_ports_per_service_bounds_srv_and_tcp_ports() -> None:
    ports = tuple((f"p{i}", "TCP", 1000 + i) for i in range(100))
    inv = model.Inventory([service("web", ports=ports)], [big_slice("web-1", "web", 2, 1, 100)])
    p = planner.plan(inv, plan_settings(max_ports_per_service=8))
    assert len([c for c in p.dns if c.qtype == "SRV"]) == 8
    assert len([c for c in p.tcp if c.path == "cluster_ip"]) == 8
    assert len([c for c in p.tcp if c.path == "endpoint"]) == 2 * 8
    assert p.capped == {"ports_per_service": 1}


def test_checks_per_sweep_leaves_whole_services_out_and_counts_them() -> None:
    services = [service(f"s{i:02d}", cluster_ips=(addresses(1, 1000 + i)[0],)) for i in range(20)]
    inv = model.Inventory(services, [])
    full = planner.plan(inv, plan_settings())
    per_service = len(full) // 20
    p = planner.plan(inv, plan_settings(max_checks_per_sweep=5 * per_service))
    assert len(p) == 5 * per_service
    assert {c.service for c in p.dns} == {f"s{i:02d}" for i in range(5)}
    assert p.capped == {"checks_per_sweep": 15}


def test_a_slice_at_the_api_limits_plans_a_bounded_number_of_checks() -> None:  # see bench/worst_case.py
    # 1,000 endpoints x 20 addresses x 100 ports (2,000,001 TCP checks before these limits).
    ports = tuple((f"p{i}", "TCP", 10000 + i) for i in range(100))
    inv = model.Inventory([service("big", ports=ports), service("db", headless=True, ports=ports)],
                          [big_slice("big-1", "big", 1000, 20, 100), big_slice("db-1", "db", 1000, 20, 100)])
    ps = plan_settings(max_checks_per_service=500, max_ports_per_service=32, max_checks_per_sweep=250_000)
    p = planner.plan(inv, ps)
    assert len([c for c in p.dns + p.tcp if c.service == "big"]) == 500  # type: ignore[operator]
    assert len([c for c in p.dns + p.tcp if c.service == "db"]) == 500  # type: ignore[operator]
    assert p.capped == {"checks_per_service": 2, "ports_per_service": 2}
    # The headless Service's SRV expectation lists each endpoint's port once per target.
    srv = next(c for c in p.dns if c.service == "db" and c.qtype == "SRV")
    assert len(srv.expect.srv) == 20_000  # 20,000 ready addresses, one port p0 each


def test_a_headless_service_too_big_for_one_dns_message_has_no_dns_checks() -> None:
    ports = (("http", "TCP", 80),)
    inv = model.Inventory([service("db", headless=True, ports=ports), service("small", headless=True, ports=ports)],
                          [big_slice("db-1", "db", 300, 1, 1), big_slice("small-1", "small", 3, 1, 1)])
    p = planner.plan(inv, plan_settings(max_answer_records=200))
    assert {c.service for c in p.dns} == {"small"}
    assert len([c for c in p.tcp if c.service == "db"]) == 300  # still connected to
    assert p.capped == {"answer_records": 1}


# ---------------------------------------------------------------------- who the agent connects to

def policy_settings(**overrides: object) -> planner.PlanSettings:
    from agent import runner, settings

    s = settings.load(overrides={"dns.nameservers": ("198.18.0.53",), "pod_ip": "198.18.5.5",
                                 "listen": "0.0.0.0:9142", **overrides})
    return runner.plan_settings(s)


FORBIDDEN = ["0.0.0.0", "127.0.0.1", "169.254.169.254", "224.0.0.1", "::1", "fe80::1", "ff02::1",
             "::ffff:127.0.0.1", "::ffff:169.254.169.254"]


def test_addresses_kubernetes_forbids_in_endpointslices_are_never_connected_to_by_default() -> None:
    eps = [endpoint(a) for a in FORBIDDEN if ":" not in a]
    eps6 = [endpoint(a) for a in FORBIDDEN if ":" in a]
    inv = model.Inventory(
        [service("web", cluster_ips=("169.254.169.254",), ports=(("http", "TCP", 80),)),
         service("agents", ports=(("metrics", "TCP", 9142),))],
        [endpoint_slice("web-4", *eps, ports=(("http", "TCP", 80),)),
         endpoint_slice("web-6", *eps6, address_type="IPv6", ports=(("http", "TCP", 80),)),
         endpoint_slice("agents-1", endpoint("198.18.5.5"), endpoint("198.18.5.6"), service="agents",
                        ports=(("metrics", "TCP", 9142),))])
    p = planner.plan(inv, policy_settings())
    assert [(c.service, c.address) for c in p.tcp if c.service == "web"] == []
    # The agent's own pod IP and port are left out; a peer's are probed.
    assert [(c.path, c.address) for c in p.tcp if c.service == "agents"] == [
        ("cluster_ip", "198.18.0.10"), ("endpoint", "198.18.5.6")]
    assert p.capped == {"address_policy": 2}
    # Nothing is skipped once the operator says so (the demo, whose backends are on loopback).
    open_plan = planner.plan(inv, policy_settings(**{"tcp.deny_cidrs": (), "pod_ip": ""}))
    assert len([c for c in open_plan.tcp if c.service == "web"]) == 1 + len(FORBIDDEN)


def test_allow_cidrs_limit_connects_to_those_ranges() -> None:
    inv = model.Inventory([service("web", cluster_ips=("198.18.0.10",))],
                          [endpoint_slice("web-1", endpoint("198.18.1.1"), endpoint("198.19.1.1"))])
    p = planner.plan(inv, policy_settings(**{"tcp.allow_cidrs": ("198.18.0.0/16",)}))
    assert sorted(c.address for c in p.tcp) == ["198.18.0.10", "198.18.1.1"]


def test_a_bad_cidr_is_a_configuration_error_naming_the_key() -> None:
    import pytest

    from agent import settings

    with pytest.raises(settings.ConfigError, match=r"tcp\.deny_cidrs: '10\.0\.0\.0/33' is not an address range"):
        settings.load(overrides={"dns.nameservers": ("198.18.0.53",), "tcp.deny_cidrs": ("10.0.0.0/33",)})
