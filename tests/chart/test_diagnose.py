"""`svcprobe diagnose` on loopback: two running demo agents, Debian's Prometheus scraping them
with the node label the chart's monitors add. The same cluster verdicts come from Prometheus,
from the agents' URLs and from the agents found through their headless Service in an
inventory; an agent that goes away is reported as not heard from, never left out silently.

Waits are bounded by deadlines; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.chart import ROOT, tool
from tests.support.processes import free_port, http_body, http_json, start, stop, wait_for

pytestmark = pytest.mark.integration
SVCPROBE = str(ROOT / ".venv" / "bin" / "svcprobe")


def diagnose(*args: str) -> tuple[int, dict[str, Any], str]:
    cp = subprocess.run([SVCPROBE, "diagnose", "--output", "json", *args], capture_output=True, text=True,
                        timeout=60)
    doc = json.loads(cp.stdout) if cp.stdout.strip() else {}
    return cp.returncode, doc, cp.stderr


def verdicts(doc: dict[str, Any]) -> set[tuple[str, str | None, int]]:
    return {(v["kind"], v["suspect"], v["node_count"]) for v in doc["verdicts"]}


@pytest.fixture(scope="module")
def two_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("diagnose")
    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, port in enumerate(ports):
            procs.append(start([SVCPROBE, "demo", "--listen", f"127.0.0.1:{port}", "--interval", "1",
                                "--duration", "600", "--log-level", "warning"], tmp / f"demo{i}.log"))
        for port in ports:
            wait_for("an agent's first findings", lambda port=port: json.loads(http_body(
                f"http://127.0.0.1:{port}/api/v1/findings"))["sweep"], procs)
        prom_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": "svcprobe", "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{p}"], "labels": {"node": f"node-{i}"}}
                                   for i, p in enumerate(ports)],
            }],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = start([tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                            f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                            "--log.level=warn"], tmp / "prometheus.log")
        procs.append(prometheus)
        url = f"http://127.0.0.1:{prom_port}"
        query = f"{url}/api/v1/query?query=count(svcprobe_finding)%20by%20(node)"
        wait_for("Prometheus to hold both agents' findings",
                 lambda: len(http_json(query)["data"]["result"]) == 2, procs)
        yield {"ports": ports, "prometheus": url, "procs": procs, "tmp": tmp}
    finally:
        for p in reversed(procs):
            stop(p)


def test_the_same_verdicts_from_prometheus_and_from_the_agents(two_agents: dict[str, Any]) -> None:
    rc, from_prom, err = diagnose("--prometheus", two_agents["prometheus"])
    assert rc == 1, err  # verdicts: the demo is broken on purpose
    assert from_prom["nodes"] == ["node-0", "node-1"] and not from_prom["silent"]
    found = verdicts(from_prom)
    # Each demo serves the same wrong and missing records: both nodes see them.
    assert {("service_records", "Service shop/search", 2), ("service_records", "Service shop/reviews", 2)} <= found
    dead = [v for v in from_prom["verdicts"] if v["kind"] == "endpoint_down"]
    assert dead and all(v["suspect"].startswith("pod shop/checkout-") for v in dead)
    assert sum(v["node_count"] for v in dead) == 2  # each demo's own dead backend, once per node

    rc, from_agents, err = diagnose(*(a for p in two_agents["ports"] for a in ("--agent", f"http://127.0.0.1:{p}")))
    assert rc == 1, err
    assert len(from_agents["nodes"]) == 2 and verdicts(from_agents) == found
    assert all(v["summaries"] for v in from_agents["verdicts"])  # the agents' own lines come along

    table = subprocess.run([SVCPROBE, "diagnose", "--prometheus", two_agents["prometheus"]], capture_output=True,
                           text=True, timeout=60).stdout
    assert table.startswith("CLUSTER VERDICTS from Prometheus") and "seen from all 2 nodes" in table


def test_agents_found_through_their_headless_service(two_agents: dict[str, Any]) -> None:
    """`diagnose` in a cluster: the agents' Service lists them (a static inventory here)."""
    p0, p1 = two_agents["ports"]
    items: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svcprobe", "namespace": "monitoring"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"name": "http", "port": 9142}]},
    }]
    for i, port in enumerate((p0, p1)):
        items.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svcprobe-{i}", "namespace": "monitoring",
                         "labels": {"kubernetes.io/service-name": "svcprobe"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        })
    inventory = two_agents["tmp"] / "agents.yaml"
    inventory.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    rc, doc, err = diagnose("--inventory", str(inventory), "--agents-service", "monitoring/svcprobe")
    assert rc == 1, err
    assert sorted(doc["nodes"]) == sorted(f"127.0.0.1:{p}" for p in (p0, p1))
    assert ("service_records", "Service shop/search", 2) in verdicts(doc)

    rc, _, err = diagnose("--inventory", str(inventory), "--agents-service", "monitoring/nope")
    assert rc == 2 and "monitoring/nope is not in the inventory" in err


def test_unreachable_sources_are_said(two_agents: dict[str, Any], tmp_path: pathlib.Path) -> None:
    port = free_port()  # nothing listens there
    rc, doc, err = diagnose("--agent", f"http://127.0.0.1:{two_agents['ports'][0]}",
                            "--agent", f"http://127.0.0.1:{port}")
    assert rc == 1 and doc["nodes"] == [f"127.0.0.1:{two_agents['ports'][0]}"]
    assert len(doc["silent"]) == 1 and doc["silent"][0].startswith(f"http://127.0.0.1:{port}: ")
    rc, _, err = diagnose("--agent", f"http://127.0.0.1:{port}")
    assert rc == 2 and "no agent could be heard" in err
    rc, _, err = diagnose("--prometheus", f"http://127.0.0.1:{port}")
    assert rc == 2 and f"Prometheus at http://127.0.0.1:{port}" in err


def test_an_agent_that_stops_is_not_heard_from(two_agents: dict[str, Any]) -> None:
    """Last: stops one agent. Prometheus loses it; diagnose says so rather than dropping it."""
    stop(two_agents["procs"][1])
    url = two_agents["prometheus"]
    wait_for("Prometheus to notice the agent is gone", lambda: len(http_json(
        f"{url}/api/v1/query?query=svcprobe_build_info")["data"]["result"]) == 1, [two_agents["procs"][0]])
    rc, doc, err = diagnose("--prometheus", url)
    assert rc == 1, err
    assert doc["nodes"] == ["node-0"]
    assert [s.split(":")[0] for s in doc["silent"]] == ["node-1"]
