"""End-to-end tier: a real kube-apiserver, CoreDNS and kube-proxy (tests/testbed, docs/testbed.md).

The bed is brought up once per session (about a minute on 2 cores) and torn down at the end.
Tests skip only when the machine cannot run it at all (not Linux, not root); a missing binary or a
failed bring-up is an error, never a skip: run scripts/install-test-deps first.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.bed import CP_IP, KUBERNETES_IP, TestBed, unavailable_reason

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


AGENT_NS = "svcprobe"
AGENT_RBAC = [  # what the chart grants the agent (chart/templates/clusterrole.yaml)
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "svcprobe-e2e"},
     "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
               {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                "verbs": ["get", "list", "watch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "svcprobe-e2e"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                 "name": "svcprobe-e2e"},
     "subjects": [{"kind": "ServiceAccount", "name": "svcprobe", "namespace": AGENT_NS}]},
]


@dataclass(frozen=True)
class AgentCredentials:
    via_service: str  # kubeconfig: the API through the `kubernetes` ClusterIP, as from a pod
    direct: str       # kubeconfig: the API server's own address (bypasses kube-proxy)


@pytest.fixture(scope="session")
def agent_credentials(bed: TestBed) -> AgentCredentials:
    """A ServiceAccount with the chart's read-only RBAC and a TokenRequest token, as kubeconfigs."""
    bed.apply(AGENT_RBAC)
    token = bed.create_token(AGENT_NS, "svcprobe", duration="2h")
    via = bed.write_kubeconfig(bed.workdir / "svcprobe-agent.kubeconfig", token=token,
                               server=f"https://{KUBERNETES_IP}:443")
    direct = bed.write_kubeconfig(bed.workdir / "svcprobe-agent-direct.kubeconfig", token=token,
                                  server=f"https://{CP_IP}:6443")
    return AgentCredentials(str(via), str(direct))
