"""End-to-end tier: a real kube-apiserver, CoreDNS and kube-proxy (tests/testbed, docs/testbed.md).

The bed is brought up once per session (about a minute on 2 cores) and torn down at the end.
Tests skip only when the machine cannot run it at all (not Linux, not root); a missing binary or a
failed bring-up is an error, never a skip: run scripts/install-test-deps first.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from testbed.bed import TestBed, unavailable_reason  # noqa: E402

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def bed() -> Any:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    tb = TestBed(nodes={"node1": "default", "node2": "default"}, dns_replicas=2)
    t0 = time.monotonic()
    tb.up()
    sys.stderr.write(f"\n[e2e] test bed up in {time.monotonic() - t0:.1f}s\n")
    try:
        yield tb
    finally:
        tb.down()


@pytest.fixture
def unique_ns(bed: TestBed, request: pytest.FixtureRequest) -> str:
    """A fresh Kubernetes namespace per test (the bed has no controller to delete namespaces)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    ns = f"t-{base}-{os.getpid() % 1000}-{int(time.monotonic() * 1000) % 100000}"
    bed.ensure_namespace(ns)
    return ns
