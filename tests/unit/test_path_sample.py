"""The rotating path sample: owned Services asked of every DNS path, recently changed first,
all of them within a few sweeps; and the findings' view of cluster DNS from the inventory."""

from __future__ import annotations

import dataclasses
import ipaddress

from agent import model, runner, settings
from agent.health import Health
from tests.support.builders import FixedSource


def svc(ns: str, name: str, ip: str) -> model.Service:
    return model.Service(ns, name, model.ServiceType.CLUSTER_IP, (ipaddress.ip_address(ip),), False,
                         (model.ServicePort("http", "TCP", 80),))


def inventory(owned: int = 10) -> model.Inventory:
    services = [svc("default", "kubernetes", "198.18.0.1"), svc("kube-system", "kube-dns", "198.18.0.10"),
                *(svc("team", f"app{i}", f"198.18.1.{i + 1}") for i in range(owned))]
    dns_slice = model.EndpointSlice("kube-system", "kube-dns-x", "kube-dns", "IPv4", (
        model.Endpoint((ipaddress.ip_address("198.19.0.2"),), True, pod="coredns-a"),
        model.Endpoint((ipaddress.ip_address("198.19.0.3"),), False, pod="coredns-b"),
    ), (model.EndpointPort("dns", "UDP", 53),))
    app_slice = model.EndpointSlice("team", "app0-x", "app0", "IPv4", (
        model.Endpoint((ipaddress.ip_address("198.19.5.1"),), True, pod="app0-6c9d"),), ())
    return model.Inventory(services, [dns_slice, app_slice])


def agent(inv: model.Inventory, sample: int = 4) -> runner.Agent:
    s = settings.load(env={}, file_data={"dns": {"nameservers": ["127.0.0.53"], "cluster_domain": "cluster.local"},
                                         "paths": {"sample_services": sample}, "node_name": "node-3"})
    health = Health()
    health.note_inventory(len(inv.services), 0)
    return runner.build(s, source=FixedSource(inv), health=health)


def sampled(p: runner.planner.Plan) -> set[str]:
    return {c.service for c in p.dns if c.path != "resolver" and c.namespace == "team"}


def test_every_owned_service_is_asked_of_every_replica_within_a_few_sweeps() -> None:
    a = agent(inventory(10))
    seen: list[set[str]] = [sampled(a.plan()) for _ in range(3)]
    assert all(len(s) == 4 for s in seen[:2]) and seen[0] != seen[1]
    assert set().union(*seen) == {f"app{i}" for i in range(10)}
    assert agent(inventory(10), sample=0).plan() and not sampled(agent(inventory(10), sample=0).plan())


def test_a_changed_service_is_sampled_first() -> None:
    inv = inventory(10)
    a = agent(inv)
    a.plan()
    changed = dataclasses.replace(inv.services[("team", "app7")], cluster_ips=(ipaddress.ip_address("198.18.2.7"),))
    a.source.inventory = model.Inventory([*[s for k, s in inv.services.items() if k != changed.key], changed],
                                         inv.slices.values())
    for _ in range(3):  # every sweep while it is recent
        assert "app7" in sampled(a.plan())


def test_topology_names_replicas_and_endpoint_pods() -> None:
    topo = agent(inventory()).topology()
    assert topo.dns_service_ips == frozenset({"198.18.0.10"}) and topo.ready_replicas == 1
    assert topo.replica_pods == {"198.19.0.2": "kube-system/coredns-a", "198.19.0.3": "kube-system/coredns-b"}
    assert topo.pod_of("team", "app0", "198.19.5.1") == "team/app0-6c9d"
    assert topo.pod_of("team", "app0", "198.19.5.9") == "" and topo.node == "node-3"


def test_churn_never_takes_every_slot() -> None:
    """With more recently changed Services than slots, half of them still rotate."""
    inv = inventory(10)
    a = agent(inv)
    a.plan()
    changed = [dataclasses.replace(s, cluster_ips=(ipaddress.ip_address(f"198.18.3.{i}"),))
               for i, (k, s) in enumerate(sorted(inv.services.items())) if k[0] == "team" and int(k[1][3:]) < 6]
    keys = {s.key for s in changed}
    a.source.inventory = model.Inventory([*changed, *(s for k, s in inv.services.items() if k not in keys)],
                                         inv.slices.values())
    seen = set().union(*(sampled(a.plan()) for _ in range(4)))
    assert {f"app{i}" for i in range(6, 10)} <= seen  # the unchanged ones get their turn
