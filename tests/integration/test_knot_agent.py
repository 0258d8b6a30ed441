"""The agent against a real authoritative server (knotd) serving a zone written by hand.

The zone is written independently of the agent's planner, the way CoreDNS would serve the
inventory, then broken in known ways: a wrong address, a missing name, an extra endpoint,
a wrong SRV port, a wrong CNAME. A root zone makes names outside the cluster zone NXDOMAIN,
as an upstream resolver would, so search walks end the way they do in a cluster.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support.knot import KnotServer, Record, zone_text

pytestmark = pytest.mark.integration

# data/big's one EndpointSlice: 60 endpoints, one address each
BIG_ENDPOINTS = ", ".join(f"{{addresses: [198.19.1.{i}]}}" for i in range(1, 61))
INVENTORY = """
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: web, namespace: shop},
   spec: {clusterIP: 198.18.0.10, clusterIPs: [198.18.0.10], ports: [{name: http, port: 80, protocol: TCP}]}}
- {apiVersion: v1, kind: Service, metadata: {name: dual, namespace: shop},
   spec: {clusterIP: 198.18.0.11, clusterIPs: [198.18.0.11, "2001:db8::11"], ports: [{port: 443}]}}
- {apiVersion: v1, kind: Service, metadata: {name: stale, namespace: shop},
   spec: {clusterIP: 198.18.0.12, ports: [{port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: gone, namespace: shop},
   spec: {clusterIP: 198.18.0.13, ports: [{port: 80}]}}
- {apiVersion: v1, kind: Service, metadata: {name: db, namespace: data},
   spec: {clusterIP: None, ports: [{name: pg, port: 5432, protocol: TCP}]}}
- {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice,
   metadata: {name: db-1, namespace: data, labels: {kubernetes.io/service-name: db}},
   addressType: IPv4, ports: [{name: pg, port: 5433, protocol: TCP}],
   endpoints: [{addresses: [198.19.0.1], hostname: db-0, conditions: {ready: true}},
               {addresses: [198.19.0.9], hostname: db-9, conditions: {ready: false, terminating: true}}]}
- {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice,
   metadata: {name: db-2, namespace: data, labels: {kubernetes.io/service-name: db}},
   addressType: IPv4, ports: [{name: pg, port: 5433, protocol: TCP}],
   endpoints: [{addresses: [198.19.0.2], hostname: db-1}]}
- {apiVersion: v1, kind: Service, metadata: {name: empty, namespace: data}, spec: {clusterIP: None}}
- {apiVersion: v1, kind: Service, metadata: {name: ext, namespace: shop},
   spec: {type: ExternalName, externalName: api.example.com}}
- {apiVersion: v1, kind: Service, metadata: {name: big, namespace: data}, spec: {clusterIP: None}}
- {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice,
   metadata: {name: big-1, namespace: data, labels: {kubernetes.io/service-name: big}},
   addressType: IPv4, endpoints: [""" + BIG_ENDPOINTS + "]}\n"


def cluster_records(*, broken: bool) -> list[Record]:
    recs = [
        Record("web.shop.svc", "A", "198.18.0.10"),
        Record("_http._tcp.web.shop.svc", "SRV", f"0 100 {8080 if broken else 80} web.shop.svc.cluster.local."),
        Record("dual.shop.svc", "A", "198.18.0.11"),
        Record("dual.shop.svc", "AAAA", "2001:db8::11"),
        Record("stale.shop.svc", "A", "198.18.0.99" if broken else "198.18.0.12"),
        Record("db.data.svc", "A", "198.19.0.1"),
        Record("db.data.svc", "A", "198.19.0.2"),
        Record("db-0.db.data.svc", "A", "198.19.0.1"),
        Record("db-1.db.data.svc", "A", "198.19.0.2"),
        Record("_pg._tcp.db.data.svc", "SRV", "0 50 5433 db-0.db.data.svc.cluster.local."),
        Record("_pg._tcp.db.data.svc", "SRV", "0 50 5433 db-1.db.data.svc.cluster.local."),
        Record("ext.shop.svc", "CNAME", "api.other.example." if broken else "api.example.com."),
    ]
    if broken:
        recs.append(Record("db.data.svc", "A", "198.19.0.9"))  # a terminating pod still published
    else:
        recs.append(Record("gone.shop.svc", "A", "198.18.0.13"))
    recs += [Record("big.data.svc", "A", f"198.19.1.{i}") for i in range(1, 61)]
    return recs


def reverse_records() -> list[Record]:
    """The PTR records CoreDNS serves for the ClusterIPs and the hostname endpoints."""
    ptr = {"198.18.0.10": "web.shop", "198.18.0.11": "dual.shop", "2001:db8::11": "dual.shop",
           "198.18.0.12": "stale.shop", "198.18.0.13": "gone.shop",
           "198.19.0.1": "db-0.db.data", "198.19.0.2": "db-1.db.data"}
    return [Record(ipaddress.ip_address(a).reverse_pointer + ".", "PTR", f"{n}.svc.cluster.local.")
            for a, n in ptr.items()]


def zones(*, broken: bool, serial: int) -> dict[str, str]:
    return {
        "cluster.local.": zone_text("cluster.local.", cluster_records(broken=broken), serial=serial),
        "arpa.": zone_text("arpa.", reverse_records(), serial=serial),
        # Stands in for the upstream resolver, so names outside the cluster zone are NXDOMAIN.
        ".": zone_text(".", [], serial=serial, mname="ns.root.invalid.", rname="hostmaster.invalid."),
    }


@pytest.fixture
def check(tmp_path: Path, knot_factory: Callable[..., KnotServer]) -> Callable[[KnotServer], list[dict]]:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"tcp": {"enabled": False},
                                   "dns": {"timeout_seconds": 1.0, "query_budget_per_second": 1000}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SVCPROBE_")}

    def run(knot: KnotServer) -> list[dict]:
        host, port = knot.nameserver
        proc = subprocess.run([sys.executable, "-m", "agent", "check", "--config", str(cfg), "--inventory", str(inv),
                               "--nameserver", f"{host}:{port}", "--cluster-domain", "cluster.local",
                               "--output", "json"], capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode in (0, 1), proc.stderr
        results = json.loads(proc.stdout)["results"]
        assert (proc.returncode == 1) == any(not r["passing"] for r in results)
        return results

    return run


def recursive_only(r: dict) -> bool:
    """The ExternalName's address through its CNAME: CoreDNS looks the target up upstream, an
    authoritative server like Knot does not follow a CNAME out of its zone (CNAME, no address).
    The conformance tier checks it against the real CoreDNS."""
    return r["service"] == "ext" and r["qtype"] == "A"


def by(results: list[dict], service: str, form: str, qtype: str) -> dict:
    matches = [r for r in results if r["service"] == service and r["form"] == form and r["qtype"] == qtype]
    assert len(matches) == 1, (service, form, qtype, matches)
    return matches[0]


def test_correct_zone_passes_every_check(knot_factory: Callable[..., KnotServer], check: Callable) -> None:
    knot = knot_factory(zones(broken=False, serial=1))
    results = check(knot)
    failing = [(r["service"], r["form"], r["qtype"], r["result"], r["detail"]) for r in results
               if not r["passing"] and not recursive_only(r)]
    assert failing == []
    # Search-list costs on the wire, as a pod in the Service's namespace pays them.
    assert [by(results, "web", f, "A")["queries"] for f in ("short", "namespace", "svc", "fqdn")] == [1, 2, 3, 1]
    # IPv4-only: AAAA is NODATA (expected); dual-stack has both.
    assert by(results, "web", "fqdn", "AAAA")["answer"] == []
    assert by(results, "dual", "fqdn", "AAAA")["answer"] == ["2001:db8::11"]
    # Headless: ready endpoints of both slices, the terminating one left out.
    assert sorted(by(results, "db", "fqdn", "A")["answer"]) == ["198.19.0.1", "198.19.0.2"]
    assert by(results, "db", "fqdn", "SRV")["result"] == "ok"
    # Headless without endpoints: NXDOMAIN is the right answer, for each of the three cluster-zone
    # names (the bare name, asked last by a pod, is the upstream resolver's to answer).
    empty_short = by(results, "empty", "short", "A")
    assert empty_short["result"] == "ok" and empty_short["queries"] == 3
    # 60 addresses do not fit a 512-byte UDP reply: the engine asked again over TCP.
    big = by(results, "big", "fqdn", "A")
    assert len(big["answer"]) == 60 and big["queries"] == 2
    assert by(results, "ext", "namespace", "CNAME")["answer"] == ["api.example.com."]


def test_broken_zone_is_reported_precisely(knot_factory: Callable[..., KnotServer], check: Callable) -> None:
    knot = knot_factory(zones(broken=True, serial=1))
    results = check(knot)
    stale = by(results, "stale", "short", "A")
    assert stale["result"] == "wrong_answer"
    assert "missing 198.18.0.12" in stale["detail"] and "unexpected 198.18.0.99" in stale["detail"]
    gone = by(results, "gone", "fqdn", "A")
    assert gone["result"] == "nxdomain" and "expected 198.18.0.13" in gone["detail"]
    gone_short = by(results, "gone", "short", "A")
    # The three cluster-zone names of the walk; the bare name after them is the upstream's to
    # answer and cannot change the verdict, so it is not asked.
    assert gone_short["result"] == "nxdomain" and gone_short["queries"] == 3
    db = by(results, "db", "fqdn", "A")
    assert db["result"] == "wrong_answer" and "unexpected 198.19.0.9" in db["detail"]
    srv = by(results, "web", "fqdn", "SRV")
    assert srv["result"] == "wrong_answer" and "8080" in srv["detail"]
    assert by(results, "ext", "fqdn", "CNAME")["result"] == "wrong_answer"
    # What was not broken still passes.
    assert by(results, "dual", "svc", "AAAA")["result"] == "ok"
    assert by(results, "web", "namespace", "A")["result"] == "ok"


def test_fixing_the_zone_clears_the_failures(knot_factory: Callable[..., KnotServer], check: Callable) -> None:
    knot = knot_factory(zones(broken=True, serial=1))
    assert any(not r["passing"] for r in check(knot))
    knot.reload(zones(broken=False, serial=2))
    assert all(r["passing"] for r in check(knot) if not recursive_only(r))
