"""agent.inventory.parse: Kubernetes API objects into the compact model.

Valid objects are read per reference/k8s-dns.md §5.1 (Service) and §5.2 (EndpointSlice);
every malformed object is rejected with an ObjectError that names the kind, the object
(namespace/name) and the exact field path.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent import model
from agent.inventory import parse
from tests.support.builders import deep, slice_obj, svc_obj

IP = ipaddress.ip_address

# --------------------------------------------------------------------------- Services


@pytest.mark.parametrize(
    ("spec", "cluster_ips", "headless"),
    [
        pytest.param({}, ("198.18.0.10",), False, id="ipv4-single-stack"),
        pytest.param({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"]}, ("fd00::10",), False,
                     id="ipv6-single-stack"),
        pytest.param({"clusterIP": "198.18.0.10", "clusterIPs": ["198.18.0.10", "fd00::10"]},
                     ("198.18.0.10", "fd00::10"), False, id="dual-stack-v4-first"),
        pytest.param({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10", "198.18.0.10"]},
                     ("fd00::10", "198.18.0.10"), False, id="dual-stack-v6-first-order-kept"),
        pytest.param({"clusterIP": "198.18.0.11", "clusterIPs": None}, ("198.18.0.11",), False,
                     id="only-clusterIP-old-object"),
        pytest.param({"clusterIP": "None", "clusterIPs": ["None"]}, (), True, id="headless"),
        pytest.param({"clusterIP": "None", "clusterIPs": None}, (), True, id="headless-clusterIP-only"),
        pytest.param({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "targetPort": 8080}]},
                     ("198.18.0.10",), False, id="nodeport-has-clusterip"),
        pytest.param({"type": "LoadBalancer"}, ("198.18.0.10",), False, id="loadbalancer-has-clusterip"),
    ],
)
def test_service_cluster_ips(spec: dict[str, Any], cluster_ips: tuple[str, ...], headless: bool) -> None:
    svc = parse.parse_service(svc_obj(**spec))
    assert svc.cluster_ips == tuple(IP(a) for a in cluster_ips)
    assert svc.headless is headless


def test_service_fields_read_from_a_full_object() -> None:
    obj = svc_obj(
        "kube-dns", "kube-system",
        ports=[{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
               {"name": "metrics", "port": 9153, "targetPort": "metrics"},
               {"name": "sctp", "port": 9, "protocol": "SCTP"}],
        publishNotReadyAddresses=True,
    )
    obj["metadata"]["labels"] = {"k8s-app": "kube-dns"}
    obj["metadata"]["annotations"] = {"prometheus.io/port": "9153", "svcprobe.io/skip-tcp": "true",
                                      "kubectl.kubernetes.io/last-applied-configuration": "{" * 1000}
    obj["status"] = {"loadBalancer": {}}
    svc = parse.parse_service(obj)
    assert svc.key == ("kube-system", "kube-dns")
    assert svc.type is model.ServiceType.CLUSTER_IP
    assert svc.ports == (
        model.ServicePort("dns", "UDP", 53),
        model.ServicePort("dns-tcp", "TCP", 53),
        model.ServicePort("metrics", "TCP", 9153),  # protocol defaults to TCP
        model.ServicePort("sctp", "SCTP", 9),
    )
    assert svc.publish_not_ready is True
    assert svc.labels == {"k8s-app": "kube-dns"}
    # Only the agent's own annotations are kept; others can be 256 KiB each and nothing reads them.
    assert svc.annotations == {"svcprobe.io/skip-tcp": "true"}
    assert parse.parse_service(obj, label_keys=frozenset({"tier"})).labels == {}
    assert parse.parse_service(obj, label_keys=frozenset({"k8s-app"})).labels == {"k8s-app": "kube-dns"}


def test_service_single_unnamed_port_is_allowed() -> None:
    svc = parse.parse_service(svc_obj(ports=[{"port": 80, "targetPort": 8080}]))
    assert svc.ports == (model.ServicePort("", "TCP", 80),)


def test_service_without_ports_is_allowed() -> None:
    svc = parse.parse_service(svc_obj(ports=None))
    assert svc.ports == ()


def test_service_namespace_defaults_to_default() -> None:
    obj = svc_obj()
    del obj["metadata"]["namespace"]
    assert parse.parse_service(obj).namespace == "default"


@pytest.mark.parametrize(
    ("external_name", "expected"),
    [
        pytest.param("api.example.com", "api.example.com", id="plain"),
        pytest.param("Api.Example.COM.", "api.example.com", id="trailing-dot-and-case-normalised"),
        pytest.param("localhost", "localhost", id="single-label"),
    ],
)
def test_external_name(external_name: str, expected: str) -> None:
    obj = svc_obj("legacy", type="ExternalName", externalName=external_name, clusterIP=None,
                  clusterIPs=None, ports=None, selector=None)
    svc = parse.parse_service(obj)
    assert svc.type is model.ServiceType.EXTERNAL_NAME
    assert svc.external_name == expected
    assert svc.cluster_ips == ()
    assert svc.headless is False


# --------------------------------------------------------------------------- EndpointSlices


def test_endpoint_slice_fields() -> None:
    obj = slice_obj(
        endpoints=[
            {"addresses": ["198.18.1.1"], "conditions": {"ready": True, "serving": True, "terminating": False},
             "hostname": "web-0", "nodeName": "node-a", "zone": "z1",
             "targetRef": {"kind": "Pod", "name": "web-0"}},
            {"addresses": ["198.18.1.2"]},  # no conditions at all
            {"addresses": ["198.18.1.3"], "conditions": {"ready": None, "serving": None, "terminating": None}},
            {"addresses": ["198.18.1.4"], "conditions": {"ready": False, "serving": True, "terminating": True}},
            {"addresses": ["198.18.1.5", "198.18.1.6"], "conditions": {}},
        ],
        ports=[{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
               {"name": "dns", "port": 53, "protocol": "UDP"},
               {"name": "all", "port": None}],
    )
    sl = parse.parse_endpoint_slice(obj)
    assert sl.key == ("shop", "web-abc12")
    assert sl.service_name == "web"
    assert sl.address_type == "IPv4"
    e = sl.endpoints
    assert (e[0].ready, e[0].hostname, e[0].pod) == (True, "web-0", "web-0")
    assert e[1].pod == ""  # no targetRef: findings name the address alone
    # nil conditions.ready => true (§5.2); serving and terminating are not read: CoreDNS and
    # kube-proxy go by ready, which the EndpointSlice controller already derives from them
    for ep in (e[1], e[2], e[4]):
        assert ep.ready is True
    assert e[3].ready is False
    assert e[4].addresses == (IP("198.18.1.5"), IP("198.18.1.6"))
    assert sl.ports == (
        model.EndpointPort("http", "TCP", 8080),
        model.EndpointPort("dns", "UDP", 53),
        model.EndpointPort("all", "TCP", None),  # nil port = "all ports", kept but not probed
    )


def test_endpoint_slice_ipv6() -> None:
    sl = parse.parse_endpoint_slice(slice_obj(address_type="IPv6", endpoints=[{"addresses": ["FD00::1"]}]))
    assert sl.endpoints[0].addresses == (IP("fd00::1"),)


def test_fqdn_slice_addresses_are_not_ip_checked() -> None:
    sl = parse.parse_endpoint_slice(slice_obj(address_type="FQDN",
                                              endpoints=[{"addresses": ["backend.example.com"]}]))
    assert sl.address_type == "FQDN"
    assert len(sl.endpoints) == 1 and sl.endpoints[0].addresses == ()


def test_slice_without_service_name_label() -> None:
    sl = parse.parse_endpoint_slice(slice_obj(service=None))
    assert sl.service_name == ""


def test_slice_with_no_endpoints_and_no_ports() -> None:
    obj = slice_obj()
    obj["endpoints"] = None
    obj["ports"] = None
    sl = parse.parse_endpoint_slice(obj)
    assert sl.endpoints == () and sl.ports == ()


# --------------------------------------------------------------------------- recorded times

MAY_1 = 1714557600.0  # 2024-05-01T10:00:00Z
TRIGGER = parse.TRIGGER_TIME_ANNOTATION


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("2024-05-01T10:00:00Z", MAY_1, id="creationTimestamp"),
    pytest.param("2024-05-01T10:00:00.5Z", MAY_1 + 0.5, id="fraction"),
    pytest.param("2024-05-01T10:00:00.123456789Z", MAY_1 + 0.123456789, id="nanoseconds"),
    pytest.param("2024-05-01t10:00:00z", MAY_1, id="lower-case-t-and-z"),
    pytest.param("2024-05-01T12:30:00+02:30", MAY_1, id="positive-offset"),
    pytest.param("2024-05-01T09:00:00-01:00", MAY_1, id="negative-offset"),
])
def test_rfc3339(text: str, expected: float) -> None:
    assert parse.rfc3339(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "yesterday", "2024-05-01", "2024-05-01T10:00:00", "2024-05-01 10:00:00Z",
                                  "2024-13-01T10:00:00Z", "2024-02-30T10:00:00Z", "2024-05-01T10:00:60Z",
                                  "2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00.Z", " 2024-05-01T10:00:00Z",
                                  "\u0662024-05-01T10:00:00Z"])
def test_rfc3339_rejects(text: str) -> None:
    assert parse.rfc3339(text) is None


def test_recorded_times_are_read() -> None:
    obj = svc_obj()
    obj["metadata"]["creationTimestamp"] = "2024-05-01T10:00:00Z"
    assert parse.parse_service(obj).created_at == MAY_1
    obj = slice_obj()
    obj["metadata"]["creationTimestamp"] = "2024-05-01T10:00:00Z"
    obj["metadata"]["annotations"] = {TRIGGER: "2024-05-01T10:00:01.25Z", "other": "x"}
    sl = parse.parse_endpoint_slice(obj)
    assert (sl.created_at, sl.trigger_time) == (MAY_1, MAY_1 + 1.25)


def test_absent_recorded_times_are_unknown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "agent.inventory.parse")
    assert parse.parse_service(svc_obj()).created_at == 0.0
    sl = parse.parse_endpoint_slice(slice_obj())
    assert (sl.created_at, sl.trigger_time) == (0.0, 0.0)
    obj = slice_obj()
    obj["metadata"]["creationTimestamp"] = None  # as kubectl prints an object the API never stored
    assert parse.parse_endpoint_slice(obj).created_at == 0.0
    assert caplog.records == []


@pytest.mark.parametrize("value", ["yesterday", "", 1714557600, "2024-13-01T10:00:00Z", ["2024-05-01T10:00:00Z"]])
def test_malformed_recorded_times_are_unknown_with_a_warning(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "agent.inventory.parse")
    obj = svc_obj()
    obj["metadata"]["creationTimestamp"] = value
    assert parse.parse_object(obj).created_at == 0.0
    obj = slice_obj()
    obj["metadata"]["annotations"] = {TRIGGER: value}
    assert parse.parse_endpoint_slice(obj).trigger_time == 0.0
    assert [r.getMessage().split(": ")[:2] for r in caplog.records] == [
        ["Service shop/web", "metadata.creationTimestamp"],
        ["EndpointSlice shop/web-abc12", f"metadata.annotations[{TRIGGER}]"]]
    assert all("is not an RFC 3339 time; taken as unknown" in r.getMessage() for r in caplog.records)


def test_slice_annotations_that_are_not_a_mapping_do_not_reject_it() -> None:
    obj = slice_obj()
    obj["metadata"]["annotations"] = ["not", "a", "mapping"]
    assert parse.parse_endpoint_slice(obj).trigger_time == 0.0


def test_recorded_times_take_no_part_in_equality() -> None:
    """The change tracker fingerprints Services by equality: metadata is no change."""
    obj = svc_obj()
    a = parse.parse_service(obj)
    obj["metadata"]["creationTimestamp"] = "2024-05-01T10:00:00Z"
    b = parse.parse_service(obj)
    assert a.created_at != b.created_at
    assert (a, hash(a)) == (b, hash(b))
    sl = parse.parse_endpoint_slice(slice_obj())
    assert dataclasses.replace(sl, created_at=MAY_1, trigger_time=MAY_1) == sl


# --------------------------------------------------------------------------- parse_object


def test_parse_object_dispatches_on_kind_and_api_version() -> None:
    assert isinstance(parse.parse_object(svc_obj()), model.Service)
    assert isinstance(parse.parse_object(slice_obj()), model.EndpointSlice)


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        pytest.param({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "kube-system"}},
                     ("v1", "ConfigMap", "kube-system/cfg"), id="configmap"),
        pytest.param({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"}},
                     ("v1", "Endpoints", "shop/web"), id="legacy-endpoints"),
        pytest.param({**slice_obj(), "apiVersion": "discovery.k8s.io/v1beta1"},
                     ("discovery.k8s.io/v1beta1", "EndpointSlice", "shop/web-abc12"), id="endpointslice-v1beta1"),
        pytest.param({**svc_obj(), "apiVersion": "v2"}, ("v2", "Service", "shop/web"), id="service-wrong-version"),
        pytest.param({"metadata": {"name": "x"}}, ("?", "default/x"), id="no-kind"),
    ],
)
def test_parse_object_unsupported_kind_names_kind_and_object(obj: dict[str, Any], words: tuple[str, ...]) -> None:
    with pytest.raises(parse.UnsupportedKind) as info:
        parse.parse_object(obj)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("doc", [pytest.param("hello", id="string"), pytest.param([1, 2], id="list"),
                                 pytest.param(42, id="number")])
def test_parse_object_non_mapping(doc: Any) -> None:
    with pytest.raises(parse.ObjectError) as info:
        parse.parse_object(doc)
    assert "must be a mapping" in str(info.value)


# --------------------------------------------------------------------------- malformed objects

Mutator = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutator:
    """Set a dotted path (with [i] list indexes) in an object; `...` deletes it."""

    def mutate(obj: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        cur: Any = obj
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        last: Any = int(parts[-1]) if isinstance(cur, list) else parts[-1]
        if value is ...:
            del cur[last]
        else:
            cur[last] = value

    return mutate


TWO_PORTS = [{"name": "http", "port": 80}, {"name": "https", "port": 443}]

SERVICE_ERRORS = [
    # (mutation, field path, words in the problem)
    pytest.param(_set("metadata.name", ...), "shop/<unnamed>", "metadata.name", "required", id="missing-name"),
    pytest.param(_set("metadata", ...), "<unnamed>", "metadata", "required", id="missing-metadata"),
    pytest.param(_set("metadata", "web"), "<unnamed>", "metadata", "mapping", id="metadata-not-mapping"),
    pytest.param(_set("metadata.name", "Web_1"), "shop/Web_1", "metadata.name", "DNS label", id="name-not-dns-label"),
    pytest.param(_set("metadata.name", 42), "shop/42", "metadata.name", "string", id="name-not-string"),
    pytest.param(_set("metadata.namespace", "Shop!"), "Shop!/web", "metadata.namespace", "DNS label",
                 id="namespace-not-dns-label"),
    pytest.param(_set("metadata.labels", ["a"]), "shop/web", "metadata.labels", "mapping", id="labels-not-mapping"),
    pytest.param(_set("metadata.labels", {"tier": 3}), "shop/web", "metadata.labels[tier]", "must be strings, not int",
                 id="label-value-not-string"),
    pytest.param(_set("metadata.annotations", {"note": {"deep": 1}}), "shop/web", "metadata.annotations[note]",
                 "must be strings, not dict", id="annotation-value-not-string"),
    pytest.param(_set("spec", ...), "shop/web", "spec", "required", id="missing-spec"),
    pytest.param(_set("spec.type", "Bogus"), "shop/web", "spec.type", "'Bogus'", id="unknown-type"),
    pytest.param(_set("spec.clusterIPs", ["198.18.0.10", "10.0.0.300"]), "shop/web", "spec.clusterIPs[1]",
                 "'10.0.0.300' is not an IP address", id="bad-ip-in-clusterIPs"),
    pytest.param(_set("spec.clusterIPs", ["198.18.0.10", "198.18.0.11"]), "shop/web", "spec.clusterIPs",
                 "one address per IP family", id="two-ipv4-clusterIPs"),
    pytest.param(_set("spec.clusterIPs", [""]), "shop/web", "spec.clusterIPs", "no ClusterIP allocated",
                 id="clusterIPs-empty-string"),
    pytest.param(lambda o: (_set("spec.clusterIPs", ...)(o), _set("spec.clusterIP", "")(o)), "shop/web",
                 "spec.clusterIP", "no ClusterIP allocated", id="clusterIP-empty-string"),
    pytest.param(lambda o: (_set("spec.clusterIPs", ...)(o), _set("spec.clusterIP", ...)(o)), "shop/web",
                 "spec.clusterIPs", "no ClusterIP allocated", id="no-clusterIP-at-all"),
    pytest.param(lambda o: (_set("spec.clusterIPs", ...)(o), _set("spec.clusterIP", "10.1.2")(o)), "shop/web",
                 "spec.clusterIP", "'10.1.2' is not an IP address", id="bad-clusterIP"),
    pytest.param(_set("spec.clusterIPs", "198.18.0.10"), "shop/web", "spec.clusterIPs", "must be a list",
                 id="clusterIPs-not-list"),
    pytest.param(_set("spec.ports", {"port": 80}), "shop/web", "spec.ports", "must be a list", id="ports-not-list"),
    pytest.param(_set("spec.ports", ["http"]), "shop/web", "spec.ports[0]", "mapping", id="port-entry-not-mapping"),
    pytest.param(_set("spec.ports[0].port", 0), "shop/web", "spec.ports[0].port", "0 is not a port number",
                 id="port-0"),
    pytest.param(_set("spec.ports", [*TWO_PORTS[:1], {"name": "https", "port": 70000}]), "shop/web",
                 "spec.ports[1].port", "70000 is not a port number", id="port-70000"),
    pytest.param(_set("spec.ports[0].port", "80"), "shop/web", "spec.ports[0].port", "'80' is not a port number",
                 id="port-string"),
    pytest.param(_set("spec.ports[0].port", True), "shop/web", "spec.ports[0].port", "not a port number",
                 id="port-bool"),
    pytest.param(_set("spec.ports[0].port", ...), "shop/web", "spec.ports[0].port", "not a port number",
                 id="port-missing"),
    pytest.param(_set("spec.ports[0].protocol", "HTTP"), "shop/web", "spec.ports[0].protocol",
                 "'HTTP' is not one of TCP, UDP, SCTP", id="protocol-HTTP"),
    pytest.param(_set("spec.ports[0].protocol", "tcp"), "shop/web", "spec.ports[0].protocol",
                 "'tcp' is not one of", id="protocol-lower-case"),
    pytest.param(_set("spec.ports", [{"name": "http", "port": 80}, {"name": "http", "port": 81}]), "shop/web",
                 "spec.ports", "unique", id="duplicate-port-names"),
    pytest.param(_set("spec.ports", [{"name": "http", "port": 80}, {"port": 81}]), "shop/web",
                 "spec.ports", "unique, non-empty names", id="unnamed-port-among-several"),
    pytest.param(_set("spec.publishNotReadyAddresses", "true"), "shop/web", "spec.publishNotReadyAddresses",
                 "true or false", id="publishNotReady-string"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName", externalName="not a host!"), "shop/web",
                 "spec.externalName", "not a DNS name", id="externalName-invalid"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName", externalName="under_score.example.com"),
                 "shop/web", "spec.externalName", "not a DNS name", id="externalName-underscore"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName", externalName=""), "shop/web",
                 "spec.externalName", "not a DNS name", id="externalName-empty"),
    pytest.param(lambda o: o["spec"].update(type="ExternalName"), "shop/web", "spec.externalName", "required",
                 id="externalName-missing"),
]


@pytest.mark.parametrize(("mutate", "ref", "field", "words"), SERVICE_ERRORS)
def test_malformed_service(mutate: Mutator, ref: str, field: str, words: str) -> None:
    obj = deep(svc_obj())
    mutate(obj)
    with pytest.raises(parse.ObjectError) as info:
        parse.parse_object(obj)
    err = info.value
    assert (err.kind, err.ref, err.field) == ("Service", ref, field)
    assert words in err.problem
    assert str(err) == f"Service {ref}: {field}: {err.problem}"


SLICE_ERRORS = [
    pytest.param(_set("metadata.name", ...), "shop/<unnamed>", "metadata.name", "required", id="missing-name"),
    pytest.param(_set("addressType", ...), "shop/web-abc12", "addressType", "required", id="missing-addressType"),
    pytest.param(_set("addressType", "IPv5"), "shop/web-abc12", "addressType", "'IPv5' is not one of",
                 id="bad-addressType"),
    pytest.param(_set("endpoints", {"addresses": []}), "shop/web-abc12", "endpoints", "must be a list",
                 id="endpoints-not-list"),
    pytest.param(_set("endpoints", ["198.18.1.1"]), "shop/web-abc12", "endpoints[0]", "mapping",
                 id="endpoint-not-mapping"),
    pytest.param(_set("endpoints[0].addresses[0]", "198.18.1.300"), "shop/web-abc12", "endpoints[0].addresses[0]",
                 "'198.18.1.300' is not an IP address", id="bad-ip"),
    pytest.param(_set("endpoints[0].addresses", ["198.18.1.1", "fd00::1"]), "shop/web-abc12",
                 "endpoints[0].addresses[1]", "'fd00::1' is not an IPv4 address", id="ipv6-in-ipv4-slice"),
    pytest.param(lambda o: o.update(addressType="IPv6"), "shop/web-abc12", "endpoints[0].addresses[0]",
                 "'198.18.1.1' is not an IPv6 address", id="ipv4-in-ipv6-slice"),
    pytest.param(_set("endpoints[0].addresses[0]", 3232235777), "shop/web-abc12", "endpoints[0].addresses[0]",
                 "string", id="ip-as-number"),
    pytest.param(_set("endpoints", [{"addresses": ["198.18.1.1"]}, {"conditions": {"ready": True}}]),
                 "shop/web-abc12", "endpoints[1].addresses", "at least one address", id="endpoint-without-addresses"),
    pytest.param(_set("endpoints[0].addresses", []), "shop/web-abc12", "endpoints[0].addresses",
                 "at least one address", id="endpoint-empty-addresses"),
    pytest.param(_set("endpoints[0].conditions.ready", "yes"), "shop/web-abc12", "endpoints[0].conditions.ready",
                 "'yes'", id="ready-yes"),
    pytest.param(_set("endpoints[0].conditions", [True]), "shop/web-abc12", "endpoints[0].conditions",
                 "mapping", id="conditions-not-mapping"),
    pytest.param(_set("endpoints[0].hostname", 7), "shop/web-abc12", "endpoints[0].hostname", "string",
                 id="hostname-not-string"),
    pytest.param(_set("endpoints[0].targetRef", {"kind": "Pod", "name": 7}), "shop/web-abc12",
                 "endpoints[0].targetRef.name", "string", id="targetref-name-not-string"),
    pytest.param(_set("endpoints[0].targetRef", {"kind": "Pod", "name": "p" * 254}), "shop/web-abc12",
                 "endpoints[0].targetRef.name", "254 characters", id="targetref-name-too-long"),
    pytest.param(_set("endpoints[0].targetRef", "web-0"), "shop/web-abc12", "endpoints[0].targetRef",
                 "mapping", id="targetref-not-mapping"),
    pytest.param(_set("ports[0].port", 0), "shop/web-abc12", "ports[0].port", "0 is not a port number",
                 id="slice-port-0"),
    pytest.param(_set("ports[0].port", 70000), "shop/web-abc12", "ports[0].port", "70000", id="slice-port-70000"),
    pytest.param(_set("ports[0].port", "8080"), "shop/web-abc12", "ports[0].port", "'8080'", id="slice-port-string"),
    pytest.param(_set("ports[0].protocol", "HTTP"), "shop/web-abc12", "ports[0].protocol", "'HTTP'",
                 id="slice-protocol-HTTP"),
    pytest.param(_set("ports", "http"), "shop/web-abc12", "ports", "must be a list", id="slice-ports-not-list"),
]


@pytest.mark.parametrize(("mutate", "ref", "field", "words"), SLICE_ERRORS)
def test_malformed_endpoint_slice(mutate: Mutator, ref: str, field: str, words: str) -> None:
    obj = deep(slice_obj())
    mutate(obj)
    with pytest.raises(parse.ObjectError) as info:
        parse.parse_object(obj)
    err = info.value
    assert (err.kind, err.ref, err.field) == ("EndpointSlice", ref, field)
    assert words in err.problem


def test_traffic_policy_and_endpoint_node_are_read() -> None:
    assert parse.parse_service(svc_obj()).internal_traffic_policy == "Cluster"
    assert parse.parse_service(svc_obj(internalTrafficPolicy="Local")).internal_traffic_policy == "Local"
    with pytest.raises(parse.ObjectError, match=r"spec\.internalTrafficPolicy"):
        parse.parse_service(svc_obj(internalTrafficPolicy="Nearby"))
    sl = parse.parse_endpoint_slice(slice_obj(endpoints=[
        {"addresses": ["198.19.0.1"], "conditions": {"ready": True}, "nodeName": "node1"},
        {"addresses": ["198.19.0.2"], "conditions": {"ready": True}}]))
    assert [e.node for e in sl.endpoints] == ["node1", ""]


def test_node_ports_external_policy_and_load_balancer_ips_are_read(caplog: pytest.LogCaptureFixture) -> None:
    obj = svc_obj(type="LoadBalancer", externalTrafficPolicy="Local",
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "198.18.200.1"}, {"ip": "198.18.200.2", "ipMode": "Proxy"},
                                                  {"hostname": "lb.example"}]}}
    svc = parse.parse_service(obj)
    assert svc.ports[0].node_port == 30080 and svc.external_traffic_policy == "Local"
    assert [str(a) for a in svc.load_balancer_ips] == ["198.18.200.1"]  # Proxy mode and hostnames: not ours
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}
    assert parse.parse_service(obj).load_balancer_ips == ()  # a controller's bad status: warned, kept
    assert "load-balancer IPs are not probed" in caplog.text
