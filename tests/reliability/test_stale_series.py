"""A Service removed from the inventory takes its failing series with it at once, even when a
check of it was still in flight (a sweep that started before the removal): the late result is
not taken back into the store. Found by the soak (tests/reliability/soak.py), which saw
removed Services' series for up to a sweep after their removal."""

from __future__ import annotations

import time

import pytest

from agent.checks import CheckResult, TcpCheck
from agent.results import ResultStore

pytestmark = pytest.mark.reliability


def failing(service: str) -> CheckResult:
    check = TcpCheck(namespace="app", service=service, path="endpoint", address="127.0.0.1", port=1,
                     family="ipv4", port_name="http")
    return CheckResult(check=check, result="refused", duration_seconds=0.001, finished_at=time.time())


def test_late_result_of_a_removed_service_is_not_exported() -> None:
    store = ResultStore()
    store.put(failing("old"))
    store.put(failing("kept"))
    store.retain_services([("app", "kept")])  # the inventory changed: app/old is gone
    store.put(failing("old"))  # ... but its check was in flight and finishes now
    assert {k[1] for k in store.failing_series()} == {"kept"}
    assert {r.check.service for r in store.snapshot()} == {"kept"}


def test_planned_service_removed_before_its_first_result() -> None:
    store = ResultStore()
    store.retain([failing("new").check.key, failing("kept").check.key])  # a sweep plans both
    store.retain_services([("app", "kept")])  # app/new is removed before any result came in
    store.put(failing("new"))
    store.put(failing("kept"))
    assert {k[1] for k in store.failing_series()} == {"kept"}


def test_a_service_that_comes_back_is_exported_again() -> None:
    store = ResultStore()
    store.put(failing("old"))
    store.retain_services([])
    store.retain_services([("app", "old")])  # re-added before the next sweep
    store.put(failing("old"))
    assert {k[1] for k in store.failing_series()} == {"old"}
    # and a new sweep's plan (retain) always wins
    store.retain_services([])
    store.retain([failing("old").check.key])
    store.put(failing("old"))
    assert {k[1] for k in store.failing_series()} == {"old"}
