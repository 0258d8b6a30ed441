"""Hostile inventories: arbitrary YAML/JSON structures and mutated Service/EndpointSlice
objects never raise anything but the documented errors (parse.ObjectError / UnsupportedKind
per object, manifests.InventoryError for a file that is not YAML at all), and whatever is
accepted can be planned."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from agent import planner
from agent.inventory import manifests, parse
from agent.runner import plan_settings
from tests.reliability.common import Svc, agent_settings, manifest

pytestmark = pytest.mark.reliability
FUZZ = hsettings(max_examples=300, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(["", "v1", "Service", "EndpointSlice", "TCP", "UDP",
                                                     "ClusterIP", "None", "10.0.0.1", "::1", "fd00::1",
                                                     "IPv4", "IPv6", "FQDN", "256.1.1.1", "a" * 300]))
json_like = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                         | st.dictionaries(st.text(max_size=12) | st.sampled_from(
                             ["kind", "apiVersion", "metadata", "spec", "items", "name", "namespace",
                              "ports", "port", "endpoints", "addresses", "conditions", "ready"]), children, max_size=5),
                         max_leaves=30)

BASE = yaml.safe_load(manifest([Svc("app", "web", "10.0.0.10", 80, (("10.1.0.1", 8080), ("10.1.0.2", 8080)))]))["items"]
SETTINGS = plan_settings(agent_settings("127.0.0.1:53", manifests.__file__))  # any path: not read here


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Service or EndpointSlice with a few fields replaced, deleted or added."""
    obj = copy.deepcopy(draw(st.sampled_from(BASE)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(obj)))
        if not path:
            continue
        parent: Any = obj
        for p in path[:-1]:
            parent = parent[p]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_like)
        else:
            parent[path[-1]] = draw(json_like)
    return obj


@FUZZ
@given(json_like)
def test_parse_object_arbitrary(obj: Any) -> None:
    try:
        parse.parse_object(obj)
    except (parse.ObjectError, parse.UnsupportedKind):
        pass


@FUZZ
@given(st.lists(mutated_objects(), min_size=1, max_size=4))
def test_mutated_objects_parse_or_fail_cleanly_and_plan(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        try:
            parse.parse_object(obj)
        except (parse.ObjectError, parse.UnsupportedKind) as exc:
            assert str(exc)  # names the object and field
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs + BASE})
    result = manifests.parse_documents(text)
    if result.ok:
        planner.plan(result.inventory, SETTINGS, services=list(result.inventory.services.values()))
    else:
        assert result.errors and all(isinstance(e, str) and e for e in result.errors)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 json_like.map(lambda d: yaml.safe_dump(d)),
                 st.lists(json_like, max_size=3).map(lambda ds: yaml.safe_dump_all(ds)),
                 st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_parse_documents_arbitrary_text(text: str) -> None:
    try:
        result = manifests.parse_documents(text)
    except manifests.InventoryError as exc:
        assert "not valid YAML/JSON" in str(exc)
        return
    assert isinstance(result.errors, tuple) and isinstance(result.warnings, tuple)


def test_yaml_bombs_are_bounded() -> None:
    """Alias expansion ("billion laughs") is refused or bounded, never a hang."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    try:
        result = manifests.parse_documents(bomb)
    except manifests.InventoryError:
        return
    assert not result.inventory.services
