"""Sharding identity: the DaemonSet tells each agent who it is and where its peers are, and the
agent, reading exactly that environment, finds its peers in the chart's own headless Service."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agent import model, settings as agent_settings
from agent.inventory.parse import parse_endpoint_slice, parse_service
from agent.targeting import assignment
from tests.support.chart import one, render

# What the kubelet would put in the downward-API variables of one agent pod.
POD = {"spec.nodeName": "node-b", "metadata.name": "probe-svcprobe-x7k2q",
       "metadata.namespace": "monitoring", "status.podIP": "10.244.1.5", "status.hostIP": "192.0.2.12"}


def agent_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The agent container's environment as the kubelet resolves it (later entries win)."""
    (c,) = one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = POD[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def agent_settings_for(docs: list[dict[str, Any]]) -> agent_settings.Settings:
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and "config.yaml" in d["data"]]
    return agent_settings.load(file_data=yaml.safe_load(cm["data"]["config.yaml"]),
                               env=agent_env(docs), overrides={"dns.nameservers": ("127.0.0.1",)})


def agents_slice(svc: dict[str, Any], endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """An EndpointSlice as the EndpointSlice controller writes it for the agents' Service."""
    meta = svc["metadata"]
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{meta['name']}-abcde", "namespace": meta["namespace"],
                     "labels": {"kubernetes.io/service-name": meta["name"]}},
        "addressType": "IPv4",
        "ports": [{"name": "http-metrics", "port": 9142, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def endpoint(ip: str, *, ready: bool, terminating: bool = False) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": {"ready": ready, "serving": ready or terminating,
                                              "terminating": terminating}}


@pytest.mark.parametrize(("values", "namespace", "name"), [
    ({}, "monitoring", "probe-svcprobe"),
    ({"fullnameOverride": "dnsprobe"}, "monitoring", "dnsprobe"),
    ({"nameOverride": "agent"}, "monitoring", "probe-agent"),
    ({"namespaceOverride": "observability"}, "observability", "probe-svcprobe"),
], ids=["default", "fullnameOverride", "nameOverride", "namespaceOverride"])
def test_peers_service_is_the_charts_headless_service(values: dict[str, Any], namespace: str,
                                                       name: str) -> None:
    docs = render(values)
    svc = one(docs, "Service")
    assert (svc["metadata"]["namespace"], svc["metadata"]["name"]) == (namespace, name)
    assert svc["spec"]["clusterIP"] == "None"
    assert agent_env(docs)["SVCPROBE_SHARDING_PEERS_SERVICE"] == f"{namespace}/{name}"
    # The agent reads it, and the Service's own key is what it looks up in its inventory.
    ts = assignment.settings_from(agent_settings_for(docs))
    assert ts.peers_service == parse_service(svc).key == (namespace, name)


def test_the_agent_reads_its_identity_from_the_chart_env() -> None:
    s = agent_settings_for(render())
    assert (s.node_name, s.pod_name, s.pod_namespace, s.pod_ip, s.host_ip) == (
        "node-b", "probe-svcprobe-x7k2q", "monitoring", "10.244.1.5", "192.0.2.12")
    assert assignment.settings_from(s).me == "10.244.1.5"


def test_user_env_cannot_silently_lose_to_the_chart() -> None:
    """The chart's variables come first, so an explicit `env` entry still wins (kubelet: last)."""
    docs = render({"env": [{"name": "SVCPROBE_SHARDING_PEERS_SERVICE", "value": "other/agents"}]})
    assert agent_env(docs)["SVCPROBE_SHARDING_PEERS_SERVICE"] == "other/agents"


def test_only_ready_agents_are_peers() -> None:
    """The headless Service does not publish not-ready addresses (see templates/service.yaml):
    the EndpointSlice controller then marks starting, crash-looping, terminating and
    dead-node agents not ready, and the agent counts only ready ones, plus itself."""
    docs = render()
    svc = one(docs, "Service")
    assert svc["spec"]["publishNotReadyAddresses"] is False
    sl = agents_slice(svc, [
        endpoint("10.244.0.7", ready=True),
        endpoint("10.244.2.9", ready=True),
        endpoint("10.244.3.3", ready=False),                     # starting / not synced yet
        endpoint("10.244.4.4", ready=False, terminating=True),   # draining
    ])
    inventory = model.Inventory([parse_service(svc)], [parse_endpoint_slice(sl)])
    ts = assignment.settings_from(agent_settings_for(docs))
    # This agent (10.244.1.5) is not in the slice yet: it counts itself.
    assert assignment.peers(inventory, ts) == ("10.244.0.7", "10.244.1.5", "10.244.2.9")

    # Had the Service published not-ready addresses, the EndpointSlice controller would have
    # marked every endpoint ready (ready = publishNotReadyAddresses || serving && !terminating),
    # and every agent with an address would count.
    svc["spec"]["publishNotReadyAddresses"] = True
    published = agents_slice(svc, [endpoint(a, ready=True) for a in
                                   ("10.244.0.7", "10.244.2.9", "10.244.3.3", "10.244.4.4")])
    inventory = model.Inventory([parse_service(svc)], [parse_endpoint_slice(published)])
    assert len(assignment.peers(inventory, ts)) == 5
