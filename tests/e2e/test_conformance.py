"""Conformance: svcprobe's expectations against the real CoreDNS kubernetes plugin (v1.12.4).

A corpus of Service shapes, built from the Kubernetes DNS specification (kubernetes/dns
docs/specification.md) and from the cases of CoreDNS's own plugin tests (handler_test.go,
handler_ignore_emptyservice_test.go), is applied to the bed's real apiserver and served by its
real CoreDNS. For the default Corefile and for each kubernetes-plugin option svcprobe has a
setting for (`ignore empty_service`, `noendpoints`, `namespaces`, `endpoint_pod_names`), CoreDNS
is restarted with that option and `svcprobe check` (told the same in its `coredns` settings)
must find nothing failing. Then deliberately broken cases: CoreDNS configured one way and
svcprobe told another (or a record overridden), each must fail exactly where the answers differ.

TCP is off: the corpus endpoints are addresses nobody listens on; DNS is the question here.
Counts go to /tmp/svcprobe-conformance.md for the issue note.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.testbed import components
from tests.testbed.bed import TestBed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPORT = Path("/tmp/svcprobe-conformance.md")
CANARY_NAMESPACES = ("default", "kube-system", "svcprobe")
HEADLESS_WITH_ENDPOINTS = {"sts", "pool", "twin", "nullport", "portless", "elsewhere-hl"}


def svc(ns: str, name: str, *, ports: list[dict[str, Any]] | None = None, headless: bool = False,
        external: str = "") -> dict[str, Any]:
    spec: dict[str, Any]
    if external:
        spec = {"type": "ExternalName", "externalName": external}
    else:
        spec = {"type": "ClusterIP"}
        if headless:
            spec["clusterIP"] = "None"
        if ports is None:
            ports = [{"name": "http", "port": 80, "protocol": "TCP"}]
        if ports:
            spec["ports"] = ports
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def slice_(ns: str, service: str, endpoints: list[dict[str, Any]], *, name: str = "",
           ports: list[dict[str, Any]] | None = None, address_type: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-a", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "conformance.svcprobe.test"}},
            "addressType": address_type,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}] if ports is None else ports,
            "endpoints": endpoints}


def ep(ip: str, *, ready: bool | None = True, hostname: str = "", pod: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    if pod:
        out["targetRef"] = {"kind": "Pod", "name": pod}
    return out


@dataclass
class Corpus:
    ns: str  # served in every variant
    other: str  # left out by the `namespaces` variant
    manifests: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # Service name -> shape

    def add(self, kind: str, service: dict[str, Any], *slices: dict[str, Any]) -> None:
        self.manifests += [service, *slices]
        self.kinds[service["metadata"]["name"]] = kind


def corpus(ns: str, other: str) -> Corpus:
    c = Corpus(ns, other)
    ip = iter(f"198.18.77.{i}" for i in range(1, 250))
    named = [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"},
             {"name": "assoc", "port": 9, "protocol": "SCTP"}]
    named_slice = [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"},
                   {"name": "assoc", "port": 9999, "protocol": "SCTP"}]
    c.add("ClusterIP, unnamed port", svc(ns, "plain", ports=[{"port": 80, "protocol": "TCP"}]),
          slice_(ns, "plain", [ep(next(ip))], ports=[{"port": 8080, "protocol": "TCP"}]))
    c.add("ClusterIP, TCP/UDP/SCTP named ports", svc(ns, "multi", ports=named),
          slice_(ns, "multi", [ep(next(ip)), ep(next(ip))], ports=named_slice))
    c.add("ClusterIP, no endpoints", svc(ns, "empty"))
    c.add("ClusterIP, only not-ready endpoints", svc(ns, "unready"),
          slice_(ns, "unready", [ep(next(ip), ready=False)]))
    c.add("ClusterIP, 63-character name", svc(ns, "l" * 63), slice_(ns, "l" * 63, [ep(next(ip))], name="long-a"))
    c.add("headless, hostnames (StatefulSet)", svc(ns, "sts", headless=True),
          slice_(ns, "sts", [ep(next(ip), hostname="sts-0", pod="sts-0"), ep(next(ip), hostname="sts-1", pod="sts-1"),
                             ep(next(ip), ready=False, hostname="sts-2", pod="sts-2")]))
    c.add("headless, no hostnames, ready unset", svc(ns, "pool", headless=True, ports=named),
          slice_(ns, "pool", [ep(next(ip), pod="pool-a"), ep(next(ip), ready=None, pod="pool-b"),
                              ep(next(ip), ready=False, pod="pool-c")], ports=named_slice))
    shared = next(ip)
    c.add("headless, one address in two slices with two hostnames", svc(ns, "twin", headless=True),
          slice_(ns, "twin", [ep(shared, hostname="left")], name="twin-a"),
          slice_(ns, "twin", [ep(shared, hostname="right"), ep(next(ip))], name="twin-b"))
    c.add("headless, no endpoints (scaled to zero)", svc(ns, "zero", headless=True))
    c.add("headless, slice port without a number", svc(ns, "nullport", headless=True),
          slice_(ns, "nullport", [ep(next(ip))], ports=[{"name": "http", "protocol": "TCP"}]))
    c.add("headless, no ports at all", svc(ns, "portless", headless=True, ports=[]),
          slice_(ns, "portless", [ep(next(ip))], ports=[]))
    c.add("headless, FQDN slice", svc(ns, "fqdn", headless=True),
          slice_(ns, "fqdn", [{"addresses": ["backend.example"], "conditions": {"ready": True}}],
                 address_type="FQDN"))
    c.add("ExternalName", svc(ns, "ext", external=f"db.{components.UPSTREAM_ZONE}"))
    c.add("ExternalName to a Service", svc(ns, "alias", external=f"plain.{ns}.svc.cluster.local"))
    c.add("ExternalName that is an IP", svc(ns, "ext-ip", external="198.18.0.1"))
    # Another namespace: left out of DNS by the `namespaces` variant.
    c.add("ClusterIP, other namespace", svc(other, "elsewhere"), slice_(other, "elsewhere", [ep(next(ip))]))
    c.add("headless, other namespace", svc(other, "elsewhere-hl", headless=True),
          slice_(other, "elsewhere-hl", [ep(next(ip), hostname="e-0")]))
    return c


@dataclass(frozen=True)
class Variant:
    label: str
    corefile: str  # kubernetes plugin options
    settings: dict[str, str]  # what svcprobe is told


def variants(c: Corpus) -> list[Variant]:
    exposed = " ".join((c.ns, *CANARY_NAMESPACES))
    return [
        Variant("default", "", {}),
        Variant("ignore empty_service", "ignore empty_service", {"SVCPROBE_COREDNS_IGNORE_EMPTY_SERVICE": "true"}),
        Variant("noendpoints", "noendpoints", {"SVCPROBE_COREDNS_NOENDPOINTS": "true"}),
        Variant("namespaces", f"namespaces {exposed}",
                {"SVCPROBE_COREDNS_NAMESPACES": ",".join((c.ns, *CANARY_NAMESPACES))}),
        Variant("endpoint_pod_names", "endpoint_pod_names", {}),
    ]


@pytest.fixture(scope="module")
def conformance(bed: TestBed, agent_credentials: Any) -> Iterator[tuple[Corpus, Any]]:
    ns, other = "conf-a", "conf-b"
    for n in (ns, other):
        bed.ensure_namespace(n)
    c = corpus(ns, other)
    bed.apply(c.manifests)
    try:
        yield c, agent_credentials
    finally:
        corefile(bed, "")


def corefile(bed: TestBed, options: str, extra: str = "") -> None:
    for r in range(1, bed.dns_replicas + 1):
        bed.start_coredns(r, kubernetes=options, extra=extra)


def check(bed: TestBed, c: Corpus, creds: Any, settings: dict[str, str]) -> list[dict[str, Any]]:
    env = {"SVCPROBE_SELECTION_NAMESPACES": f"{c.ns},{c.other}", "SVCPROBE_SHARDING_REPLICAS": "0",
           "SVCPROBE_DNS_GRACE_SECONDS": "0", "SVCPROBE_TCP_ENABLED": "false", "SVCPROBE_NODE_NAME": "node1",
           "SVCPROBE_KUBERNETES_KUBECONFIG": creds.via_service, **settings}
    cp = bed.node_exec("node1", ["env", *(f"{k}={v}" for k, v in env.items()),
                                 sys.executable, "-m", "agent", "check", "--output", "json"], timeout=300)
    assert cp.returncode in (0, 1), f"svcprobe check exited {cp.returncode}: {cp.stderr}"
    results: list[dict[str, Any]] = json.loads(cp.stdout)["results"]
    return [r for r in results if r["namespace"] in (c.ns, c.other) and r["check"] == "dns"]


def failing(results: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{r['service']} {r['form']} {r['qtype']} {r['path']}: {r['result']} {r['detail']}"
                  for r in results if not r["passing"])


def failing_services(results: list[dict[str, Any]]) -> set[str]:
    return {r["service"] for r in results if not r["passing"]}


def test_every_shape_under_every_corefile_option_is_ok(bed: TestBed, conformance: tuple[Corpus, Any]) -> None:
    c, creds = conformance
    lines = ["# Conformance: svcprobe vs CoreDNS 1.12.4", "",
             "| Corefile option | DNS checks | by Service shape | failing |", "|---|---|---|---|"]
    problems: list[str] = []
    for v in variants(c):
        corefile(bed, v.corefile)
        results = check(bed, c, creds, v.settings)
        per_kind = Counter(c.kinds[r["service"]] for r in results if r["service"] in c.kinds)
        bad = failing(results)
        problems += [f"{v.label}: {b}" for b in bad]
        lines.append(f"| {v.label or 'default'} | {len(results)} | "
                     + "; ".join(f"{k}: {n}" for k, n in sorted(per_kind.items())) + f" | {len(bad)} |")
        # Not vacuous: every shape was asked about, except what the option takes out of DNS.
        asked = {r["service"] for r in results}
        skipped = {"elsewhere", "elsewhere-hl"} if v.label == "namespaces" else set()
        assert set(c.kinds) - skipped - {"fqdn"} <= asked, (v.label, sorted(set(c.kinds) - asked))
    REPORT.write_text("\n".join(lines + ["", *problems]) + "\n", encoding="utf-8")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("label, options, extra, told, broken", [
    # ExternalNames pointing nowhere: applications fail, so must the checks
    ("ExternalName to a Service that does not exist", "", "", {"+alias": "gone"}, {"alias-gone"}),
    ("ExternalName to an outside name that does not resolve", "", "", {"+ext": "nothing.example.org"},
     {"ext-gone"}),
    ("CoreDNS ignores empty Services, svcprobe not told", "ignore empty_service", "", {}, {"empty", "unready"}),
    ("CoreDNS serves no endpoints, svcprobe not told", "noendpoints", "", {}, HEADLESS_WITH_ENDPOINTS),
    # (the FQDN-slice Service too: told noendpoints, svcprobe expects its NXDOMAIN)
    ("svcprobe told noendpoints, CoreDNS serves them", "", "", {"SVCPROBE_COREDNS_NOENDPOINTS": "true"},
     HEADLESS_WITH_ENDPOINTS | {"fqdn"}),
    ("CoreDNS serves one namespace, svcprobe not told", "namespaces conf-a " + " ".join(CANARY_NAMESPACES), "", {},
     {"elsewhere", "elsewhere-hl"}),
    ("one name overridden", "", "template IN A cluster.local {\n  match ^plain[.]conf-a[.]svc[.]cluster[.]local[.]$\n"
     "  answer \"{{ .Name }} 5 IN A 198.18.99.99\"\n  fallthrough\n}", {}, {"plain"}),
    # (alias, an ExternalName to plain, is not hit: CoreDNS follows the CNAME inside its kubernetes
    # plugin, where the template plugin does not come in)
], ids=lambda v: v if isinstance(v, str) and " " in v else "")
def test_a_mismatch_fails_exactly_where_the_answers_differ(
        bed: TestBed, conformance: tuple[Corpus, Any], label: str, options: str, extra: str,
        told: dict[str, str], broken: set[str]) -> None:
    c, creds = conformance
    # "+kind": target -- one more ExternalName for this case only, pointing at `target`
    added = [svc(c.ns, f"{k[1:]}-gone", external=v if "." in v else f"{v}.{c.ns}.svc.cluster.local")
             for k, v in told.items() if k.startswith("+")]
    told = {k: v for k, v in told.items() if not k.startswith("+")}
    if added:
        bed.apply(added)
    corefile(bed, options, extra)
    try:
        results = check(bed, c, creds, told)
    finally:
        corefile(bed, "")
        for obj in added:
            bed.delete("service", c.ns, obj["metadata"]["name"])
    assert failing_services(results) == broken, (label, failing(results))
    with REPORT.open("a", encoding="utf-8") as fh:
        fh.write(f"- broken case '{label}': failing Services {sorted(failing_services(results))} "
                 f"({len([r for r in results if not r['passing']])} checks)\n")
