"""agent.inventory.manifests: the static inventory file (YAML/JSON Kubernetes manifests).

Input is what `kubectl get svc,endpointslices -A -o yaml` prints (a v1 List), multi-document
YAML, JSON, and Lists nested in either (issue 2, item 2). Other kinds are skipped with a
warning; malformed objects are reported with the file, the object and the field.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml

from agent import model
from agent.inventory import manifests
from tests.support.builders import kubectl_dump, slice_obj, svc_obj

IP = ipaddress.ip_address


def _load(text: str) -> manifests.LoadResult:
    return manifests.parse_documents(text, source="inv.yaml")


def _dump(*docs: object) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


# --------------------------------------------------------------------------- the kubectl dump


@pytest.fixture(scope="module")
def dump_result() -> manifests.LoadResult:
    return _load(kubectl_dump())


def test_dump_loads_without_errors_or_warnings(dump_result: manifests.LoadResult) -> None:
    assert dump_result.ok, dump_result.errors
    assert dump_result.errors == ()
    assert dump_result.warnings == ()
    inv = dump_result.inventory
    assert sorted(inv.services) == [
        ("default", "kubernetes"), ("kube-system", "kube-dns"), ("shop", "db"), ("shop", "external"),
        ("shop", "gateway"), ("shop", "legacy-api"), ("shop", "peers"), ("shop", "web"),
    ]
    assert len(inv.slices) == 11


@pytest.mark.parametrize(
    ("key", "type_", "cluster_ips", "headless", "ports"),
    [
        pytest.param(("default", "kubernetes"), "ClusterIP", ("198.18.0.1",), False, (("https", "TCP", 443),),
                     id="kubernetes"),
        pytest.param(("kube-system", "kube-dns"), "ClusterIP", ("198.18.0.10",), False,
                     (("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)), id="kube-dns"),
        pytest.param(("shop", "web"), "ClusterIP", ("fd00:10:96::1234", "198.18.12.34"), False,
                     (("http", "TCP", 80), ("https", "TCP", 443)), id="dual-stack"),
        pytest.param(("shop", "db"), "ClusterIP", (), True, (("postgres", "TCP", 5432),), id="headless"),
        pytest.param(("shop", "legacy-api"), "ExternalName", (), False, (), id="externalname"),
        pytest.param(("shop", "gateway"), "NodePort", ("198.18.7.7",), False, (("", "TCP", 80),), id="nodeport"),
    ],
)
def test_dump_services(dump_result: manifests.LoadResult, key: tuple[str, str], type_: str,
                       cluster_ips: tuple[str, ...], headless: bool, ports: tuple[tuple[str, str, int], ...]) -> None:
    svc = dump_result.inventory.services[key]
    assert svc.type.value == type_
    assert svc.cluster_ips == tuple(IP(a) for a in cluster_ips)
    assert svc.headless is headless
    assert tuple((p.name, p.protocol, p.port) for p in svc.ports) == ports


def test_dump_externalname_and_publish_not_ready(dump_result: manifests.LoadResult) -> None:
    services = dump_result.inventory.services
    assert services[("shop", "legacy-api")].external_name == "api.example.com"
    assert services[("shop", "peers")].publish_not_ready is True
    assert services[("shop", "db")].publish_not_ready is False


def test_dump_slices_join_their_service_by_label(dump_result: manifests.LoadResult) -> None:
    inv = dump_result.inventory
    web = inv.services[("shop", "web")]
    assert [s.name for s in inv.slices_of(web)] == ["web-v4-aaaaa", "web-v4-bbbbb", "web-v6-ccccc"]
    # the slice without kubernetes.io/service-name is loaded but joins no Service
    assert inv.slices[("shop", "manual-ep")].service_name == ""
    assert all(sl.name != "manual-ep" for svc in inv.services.values() for sl in inv.slices_of(svc))
    # FQDN slices are kept (address semantics: none)
    ext = inv.services[("shop", "external")]
    assert [s.address_type for s in inv.slices_of(ext)] == ["FQDN"]
    assert inv.ready_endpoints(ext) == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # nil ready (conditions: {}) counts as ready
        pytest.param(("default", "kubernetes"), {"198.19.0.2": (6443,)}, id="nil-ready"),
        # terminating (ready false) excluded, nil ready in the second slice kept, ports are per slice
        pytest.param(("shop", "web"), {"198.19.1.21": (8080, 8443), "198.19.3.23": (8081, 8443),
                                       "fd00:10:244:1::21": (8080, 8443)}, id="dual-stack-terminating-excluded"),
        # not-ready db-1 excluded; db-0 is in two slices and counted once
        pytest.param(("shop", "db"), {"198.19.1.30": (5433,), "198.19.3.32": (5433,)}, id="headless-dedupe"),
        # publishNotReadyAddresses: the controller writes ready=true for the not-serving pod
        pytest.param(("shop", "peers"), {"198.19.1.40": (7946,), "198.19.2.41": (7946,)}, id="publish-not-ready"),
        pytest.param(("shop", "gateway"), {}, id="slice-without-endpoints"),
    ],
)
def test_dump_ready_endpoints(dump_result: manifests.LoadResult, key: tuple[str, str],
                              expected: dict[str, tuple[int, ...]]) -> None:
    inv = dump_result.inventory
    ready = inv.ready_endpoints(inv.services[key])
    got = [(str(e.address), tuple(p.port for p in e.ports)) for e in ready]
    assert len(got) == len(expected)  # no duplicates
    assert dict(got) == expected


def test_dump_endpoint_details(dump_result: manifests.LoadResult) -> None:
    inv = dump_result.inventory
    dns = inv.slices[("kube-system", "kube-dns-x7k2p")]
    assert [tuple(map(str, e.addresses)) for e in dns.endpoints] == [("198.19.1.11",), ("198.19.2.12",)]
    assert dns.ports == (model.EndpointPort("dns-tcp", "TCP", 53), model.EndpointPort("dns", "UDP", 53),
                         model.EndpointPort("metrics", "TCP", 9153))
    db = inv.slices[("shop", "db-ddddd")]
    assert [(e.hostname, e.ready) for e in db.endpoints] == [("db-0", True), ("db-1", False)]
    web4 = inv.slices[("shop", "web-v4-aaaaa")]
    assert web4.endpoints[1].ready is False  # terminating


MAY_1 = 1714557600.0  # 2024-05-01T10:00:00Z


def test_dump_recorded_times(dump_result: manifests.LoadResult) -> None:
    inv = dump_result.inventory
    assert inv.services[("default", "kubernetes")].created_at == MAY_1
    assert inv.slices[("kube-system", "kube-dns-x7k2p")].trigger_time == MAY_1 + 60


def test_unquoted_yaml_times_are_read_and_a_bad_one_rejects_nothing() -> None:
    res = _load("""
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, creationTimestamp: 2024-05-01T12:00:00+02:00}
spec: {clusterIP: 198.18.0.10, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-x
  namespace: shop
  creationTimestamp: 2024-05-01 10:00:00  # no zone: YAML says UTC
  labels: {kubernetes.io/service-name: web}
  annotations: {endpoints.kubernetes.io/last-change-trigger-time: soon}
addressType: IPv4
endpoints: [{addresses: [198.18.1.1]}]
""")
    assert res.ok and res.warnings == ()
    sl = res.inventory.slices[("shop", "web-x")]
    assert (res.inventory.services[("shop", "web")].created_at, sl.created_at, sl.trigger_time) == (MAY_1, MAY_1, 0.0)


def test_dump_as_json_gives_the_same_inventory(dump_result: manifests.LoadResult) -> None:
    data = yaml.safe_load(kubectl_dump())
    as_json = json.dumps(data, indent=4)  # kubectl -o json layout
    res = _load(as_json)
    assert res.ok and res.warnings == ()
    assert res.inventory.services == dump_result.inventory.services
    assert res.inventory.slices == dump_result.inventory.slices


def test_dump_as_multi_document_yaml_gives_the_same_inventory(dump_result: manifests.LoadResult) -> None:
    items = yaml.safe_load(kubectl_dump())["items"]
    res = _load("---\n" + _dump(*items) + "---\n")  # leading and trailing separators: empty documents
    assert res.ok and res.warnings == ()
    assert res.inventory.services == dump_result.inventory.services
    assert res.inventory.slices == dump_result.inventory.slices


# --------------------------------------------------------------------------- document shapes


def test_nested_lists() -> None:
    doc = {
        "apiVersion": "v1", "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceList", "items": [svc_obj("a"), svc_obj("b")]},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
             "items": [slice_obj("a-1", service="a")]},
            {"kind": "List", "items": [{"kind": "List", "items": [svc_obj("c")]}]},
        ],
    }
    res = _load(_dump(doc))
    assert res.ok
    assert sorted(res.inventory.services) == [("shop", "a"), ("shop", "b"), ("shop", "c")]
    assert list(res.inventory.slices) == [("shop", "a-1")]


def test_list_and_loose_documents_mixed() -> None:
    res = _load(_dump({"kind": "List", "items": [svc_obj("a")]}, svc_obj("b"), slice_obj("b-1", service="b")))
    assert res.ok
    assert sorted(res.inventory.services) == [("shop", "a"), ("shop", "b")]


def test_json_array_is_not_a_list_object() -> None:
    res = _load(json.dumps([svc_obj()]))
    assert not res.ok
    assert "must be a mapping" in res.errors[0]


def test_empty_file_is_an_empty_inventory() -> None:
    res = _load("")
    assert res.ok and len(res.inventory) == 0 and res.warnings == ()


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        pytest.param({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "kube-system"}},
                     ("ConfigMap", "kube-system/cfg"), id="configmap"),
        pytest.param({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"}},
                     ("Endpoints", "shop/web"), id="v1-endpoints"),
        pytest.param({**slice_obj("old"), "apiVersion": "discovery.k8s.io/v1beta1"},
                     ("discovery.k8s.io/v1beta1 EndpointSlice", "shop/old"), id="endpointslice-v1beta1"),
        pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                      "spec": {"replicas": 3}}, ("apps/v1 Deployment", "shop/web"), id="deployment"),
    ],
)
def test_unknown_kinds_are_skipped_with_a_warning(doc: dict[str, object], words: tuple[str, ...]) -> None:
    res = _load(_dump({"kind": "List", "items": [svc_obj("a"), doc]}))
    assert res.ok
    assert list(res.inventory.services) == [("shop", "a")]
    assert len(res.warnings) == 1
    w = res.warnings[0]
    assert w.startswith("inv.yaml: document 1 items[1]: skipped")
    for word in words:
        assert word in w


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        pytest.param([{"kind": "List", "items": [svc_obj(), svc_obj(ports=[{"port": 0}])]}],
                     "inv.yaml: document 1 items[1]: Service shop/web: spec.ports[0].port: 0 is not a port number",
                     id="in-a-list"),
        pytest.param([svc_obj("a"), slice_obj(endpoints=[{"addresses": ["fd00::1"]}])],
                     "inv.yaml: document 2: EndpointSlice shop/web-abc12: endpoints[0].addresses[0]: "
                     "'fd00::1' is not an IPv4 address", id="second-document"),
    ],
)
def test_malformed_objects_are_reported_with_file_place_object_and_field(docs: list[object], expected: str) -> None:
    res = _load(_dump(*docs))
    assert not res.ok
    assert len(res.errors) == 1
    assert res.errors[0].startswith(expected)


def test_one_malformed_object_does_not_hide_the_others() -> None:
    bad = svc_obj("bad", clusterIPs=["not-an-ip"])
    res = _load(_dump({"kind": "List", "items": [svc_obj("a"), bad, svc_obj("b"),
                                                 slice_obj("s", endpoints=[{"conditions": {"ready": "yes"}}])]}))
    assert len(res.errors) == 2
    assert "Service shop/bad: spec.clusterIPs[0]" in res.errors[0]
    assert "EndpointSlice shop/s: endpoints[0].addresses" in res.errors[1]
    assert sorted(res.inventory.services) == [("shop", "a"), ("shop", "b")]


@pytest.mark.parametrize(
    ("docs", "words"),
    [
        pytest.param([svc_obj("a"), svc_obj("a", clusterIPs=["198.18.0.99"])], "Service shop/a appears more than once",
                     id="service"),
        pytest.param([slice_obj("s"), slice_obj("s")], "EndpointSlice shop/s appears more than once", id="slice"),
    ],
)
def test_duplicates_are_errors_and_the_first_wins(docs: list[object], words: str) -> None:
    res = _load(_dump(*docs))
    assert len(res.errors) == 1
    assert res.errors[0] == f"inv.yaml: document 2: {words}"
    if words.startswith("Service"):
        assert res.inventory.services[("shop", "a")].cluster_ips == (IP("198.18.0.10"),)


def test_same_name_in_different_namespaces_or_kinds_is_not_a_duplicate() -> None:
    res = _load(_dump(svc_obj("a", "ns1"), svc_obj("a", "ns2"), slice_obj("a", "ns1", service="a")))
    assert res.ok
    assert sorted(res.inventory.services) == [("ns1", "a"), ("ns2", "a")]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param("apiVersion: v1\nkind: Service\nmetadata: {name: web\nspec: {}\n", 4, 5, id="unclosed-flow"),
        pytest.param("items:\n- a: 1\n  b: [1, 2\n", 4, 1, id="unclosed-sequence"),
        pytest.param("a: 1\n\tb: 2\n", 2, 1, id="tab-indent"),
        pytest.param('{"apiVersion": "v1", "kind": "List", "items": [}', 1, 48, id="json"),
    ],
)
def test_syntax_error_reports_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(manifests.InventoryError) as info:
        _load(text)
    msg = str(info.value)
    assert msg.startswith("inv.yaml: not valid YAML/JSON")
    assert f"at line {line}, column {column}" in msg


# --------------------------------------------------------------------------- files


def test_load_file(tmp_path: Path) -> None:
    p = tmp_path / "dump.yaml"
    p.write_text(kubectl_dump(), encoding="utf-8")
    res = manifests.load_file(str(p))
    assert res.ok and len(res.inventory) == 8


def test_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(_dump(svc_obj(ports=[{"port": 80, "protocol": "HTTP"}])), encoding="utf-8")
    res = manifests.load_file(str(p))
    assert res.errors[0].startswith(f"{p}: document 1: Service shop/web: spec.ports[0].protocol:")


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.yaml"
    with pytest.raises(manifests.InventoryError, match="inventory file does not exist") as info:
        manifests.load_file(str(p))
    assert str(p) in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: d, id="directory"),
        pytest.param(lambda d: (d / "latin1.yaml").write_bytes(b"kind: List\nitems: []\n# caf\xe9\n")
                     and d / "latin1.yaml", id="not-utf8"),
    ],
)
def test_unreadable_file(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(manifests.InventoryError, match="cannot read inventory file") as info:
        manifests.load_file(str(path))
    assert str(path) in str(info.value)


def test_file_stamp_changes_when_rewritten(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    assert manifests.file_stamp(str(p)) is None
    p.write_text("a: 1\n")
    first = manifests.file_stamp(str(p))
    p.write_text("a: 12\n")
    assert manifests.file_stamp(str(p)) != first
