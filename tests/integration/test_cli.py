"""The command line as users run it: real processes, exit codes, messages, the demo."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from agent.demo import sandbox
from agent.demo.dnsserver import DnsServer
from tests.support.listeners import full_backlog

SVCPROBE = [sys.executable, "-m", "agent"]
# Never let a test fall back to the machine's resolver or its SVCPROBE_* settings.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SVCPROBE_")}
# The demo's backends are on loopback, which tcp.deny_cidrs refuses by default: allow it, as the
# demo's own one-shot command line does.
CLI_ENV = {**CLEAN_ENV, "SVCPROBE_TCP_DENY_CIDRS": ""}


async def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SVCPROBE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**CLI_ENV, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclasses.dataclass
class Demo:
    """The demo sandbox on a loopback block of its own (tests may run beside a demo)."""

    server: DnsServer
    inventory: str
    block: int

    def addr(self, address: str) -> str:
        return sandbox.relocate(address, self.block)


@pytest.fixture
async def demo_dns(tmp_path: Path) -> AsyncIterator[Demo]:
    inventory = str(tmp_path / "demo-inventory.yaml")
    async with sandbox.open_sandbox(inventory, prefer_default=False) as (server, block):
        yield Demo(server, inventory, block)


def ns_arg(demo: Demo) -> str:
    return f"{demo.server.address[0]}:{demo.server.address[1]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_check_json_reports_every_check_and_exits_1_on_failures(demo_dns: Demo) -> None:
    code, out, err = await run("check", "--inventory", demo_dns.inventory, "--nameserver", ns_arg(demo_dns),
                               "--cluster-domain", "cluster.local", "--output", "json")
    assert code == 1, err
    doc = json.loads(out)
    fields = {"namespace", "service", "check", "form", "qtype", "path", "target", "address", "port", "result",
              "duration_seconds", "queries", "detail"}
    assert all(fields <= set(r) for r in doc["results"])
    failing = {(r["service"], r["check"], r["result"]) for r in doc["results"] if not r["passing"]}
    assert failing == {("search", "dns", "wrong_answer"), ("reviews", "dns", "nxdomain"),
                       ("checkout", "tcp", "refused")}
    tcp_targets = {(r["service"], r["target"], r["address"], r["port"]) for r in doc["results"] if r["check"] == "tcp"}
    # Endpoints are probed on the slice's port, the ClusterIP on the Service's port.
    assert ("frontend", "endpoint", demo_dns.addr("127.0.20.11"), 8080) in tcp_targets
    assert ("kubernetes", "endpoint", demo_dns.addr("127.0.20.1"), 6443) in tcp_targets
    assert ("kubernetes", "cluster_ip", demo_dns.addr("127.0.10.1"), 8443) in tcp_targets
    # The not-ready (terminating) endpoint of shop/cart is not probed.
    assert not any(a == demo_dns.addr("127.0.20.14") for _, _, a, _ in tcp_targets)


async def test_check_exits_0_when_everything_passes(tmp_path: Path, demo_dns: Demo) -> None:
    doc = yaml.safe_load(Path(demo_dns.inventory).read_text())
    healthy = {"frontend", "cart", "db", "payments", "kubernetes"}
    doc["items"] = [i for i in doc["items"] if i["metadata"]["name"].split("-")[0] in healthy]
    inv = tmp_path / "healthy.yaml"
    inv.write_text(yaml.safe_dump(doc))
    code, out, err = await run("check", "--inventory", str(inv), "--nameserver", ns_arg(demo_dns))
    assert code == 0, out + err
    assert "0 failing" in out


async def test_check_table_names_what_failed(demo_dns: Demo) -> None:
    code, out, _ = await run("check", "--inventory", demo_dns.inventory, "--nameserver", ns_arg(demo_dns))
    assert code == 1
    assert "shop/search" in out and "wrong_answer" in out and f"unexpected {demo_dns.addr('127.0.10.99')}" in out
    assert "shop/legacy" in out and "ok (no ready endpoints)" in out


def one_service(tmp_path: Path) -> tuple[Path, Path]:
    inv = tmp_path / "one.yaml"
    inv.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "x"},
                                   "spec": {"clusterIP": "127.0.10.1", "ports": [{"port": 9, "name": "p"}]}}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dns": {"timeout_seconds": 0.2, "attempts": 1, "forms": ["fqdn"], "srv": False},
                                   "tcp": {"enabled": False}}))
    return inv, cfg


async def test_unreachable_nameserver_is_a_timeout_not_a_crash(tmp_path: Path) -> None:
    # A loopback UDP socket that never answers: queries go unanswered.
    inv, cfg = one_service(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, out, err = await run("check", "--config", str(cfg), "--inventory", str(inv),
                                   "--nameserver", f"127.0.0.1:{port}", "--output", "json")
    assert code == 1, err
    results = json.loads(out)["results"]
    assert results and all(r["result"] == "timeout" for r in results)
    assert all(f"127.0.0.1:{port}" in r["detail"] for r in results)


async def test_closed_nameserver_port_is_refused_not_a_timeout(tmp_path: Path) -> None:
    # A loopback UDP port nobody listens on: the ICMP port-unreachable reaches the engine's
    # connected socket, so the lookup ends at once as refused (as glibc reports it).
    inv, cfg = one_service(tmp_path)
    port = free_port()
    code, out, err = await run("check", "--config", str(cfg), "--inventory", str(inv),
                               "--nameserver", f"127.0.0.1:{port}", "--output", "json")
    assert code == 1, err
    results = json.loads(out)["results"]
    assert results and all(r["result"] == "refused" for r in results)
    assert all(f"127.0.0.1:{port}" in r["detail"] and "ICMP port unreachable" in r["detail"] for r in results)


@pytest.mark.parametrize(("args", "files", "needle"), [
    pytest.param(["check", "--bogus"], {}, "unrecognized arguments: --bogus", id="unknown-flag"),
    pytest.param(["frobnicate"], {}, "invalid choice", id="unknown-command"),
    pytest.param(["check", "--ndots", "x"], {}, "invalid int value", id="bad-int"),
    pytest.param(["check", "--nameserver", "dns.example:53", "--inventory", "{inv}"], {"inv": "[]"},
                 "dns.nameservers: 'dns.example' is not an IP address", id="nameserver-not-ip"),
    pytest.param(["check", "--nameserver", "127.0.0.1:99999", "--inventory", "{inv}"], {"inv": "[]"},
                 "99999 is not a port number", id="nameserver-bad-port"),
    pytest.param(["check", "--config", "{cfg}", "--nameserver", "127.0.0.1"], {"cfg": "dns:\n  tiemout_seconds: 1\n"},
                 "dns.tiemout_seconds: unknown setting", id="config-unknown-key"),
    pytest.param(["check", "--config", "{cfg}", "--nameserver", "127.0.0.1"],
                 {"cfg": "scheduler:\n  interval_seconds: -3\n"},
                 "scheduler.interval_seconds: -3.0 is below the minimum", id="config-out-of-range"),
    pytest.param(["check", "--config", "{cfg}", "--nameserver", "127.0.0.1"], {"cfg": "dns: [1, 2\n"},
                 "is not valid YAML at line", id="config-broken-yaml"),
    pytest.param(["check", "--config", "/nonexistent/svcprobe.yaml"], {}, "does not exist", id="config-missing"),
    pytest.param(["check", "--nameserver", "127.0.0.1", "--inventory", "{inv}"], {"inv": "items: [\n  {a: b\n"},
                 "not valid YAML/JSON at line", id="inventory-broken-yaml"),
    pytest.param(["check", "--nameserver", "127.0.0.1", "--inventory", "/nonexistent/inv.yaml"], {},
                 "inventory file does not exist", id="inventory-missing"),
    pytest.param(["check", "--nameserver", "127.0.0.1", "--inventory", "{inv}"],
                 {"inv": "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                         "spec: {clusterIP: 10.0.0.1, ports: [{port: 70000}]}\n"},
                 "Service shop/web: spec.ports[0].port: 70000 is not a port number", id="inventory-bad-port"),
    pytest.param(["check", "--nameserver", "127.0.0.1", "--inventory", "{inv}"],
                 {"inv": "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, namespace: shop}\n"
                         "addressType: IPv4\nendpoints: [{addresses: ['fe80::1']}]\n"},
                 "EndpointSlice shop/s: endpoints[0].addresses[0]: 'fe80::1' is not an IPv4 address",
                 id="inventory-wrong-family"),
    pytest.param(["run", "--nameserver", "127.0.0.1", "--config", "{cfg}"],
                 {"cfg": "kubernetes:\n  kubeconfig: /nonexistent/kubeconfig\n"},
                 "Kubernetes API: no kubeconfig at /nonexistent/kubeconfig", id="run-without-inventory-or-cluster"),
    pytest.param(["check", "--nameserver", "127.0.0.1", "--config", "{cfg}"],
                 {"cfg": "kubernetes:\n  kubeconfig: /nonexistent/kubeconfig\n"},
                 "Kubernetes API: no kubeconfig at /nonexistent/kubeconfig", id="check-without-inventory-or-cluster"),
    pytest.param(["check", "--config", "{cfg}", "--nameserver", "127.0.0.1"],
                 {"cfg": "selection:\n  label_selector: 'tier in web'\n"},
                 "selection.label_selector: 'tier in web' is not a label selector requirement", id="bad-selector"),
    pytest.param(["check", "--config", "{cfg}", "--nameserver", "127.0.0.1"],
                 {"cfg": "selection:\n  canaries: [kube-dns]\n"},
                 "selection.canaries: 'kube-dns' is not NAMESPACE/NAME", id="bad-canary"),
    pytest.param(["check", "--config", "{cfg}", "--nameserver", "127.0.0.1"],
                 {"cfg": "paths:\n  nodelocal_address: node-local\n"},
                 "paths.nodelocal_address: 'node-local' is not an IP address", id="bad-nodelocal"),
    pytest.param(["check", "--config", "{cfg}"], {"cfg": "dns:\n  resolv_conf: /nonexistent/resolv.conf\n"},
                 "dns.resolv_conf: cannot read /nonexistent/resolv.conf", id="no-resolv-conf"),
])
async def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, args: list[str], files: dict[str, str],
                                                      needle: str) -> None:
    paths = {}
    for key, text in files.items():
        p = tmp_path / f"{key}.yaml"
        p.write_text(text)
        paths[key] = str(p)
    code, out, err = await run(*[a.format(**paths) for a in args])
    assert code == 2, out + err
    assert needle in err


async def test_unknown_kinds_are_skipped_with_a_warning(tmp_path: Path, demo_dns: Demo) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: shop}\n---\n"
                   + Path(demo_dns.inventory).read_text())
    code, out, err = await run("check", "--inventory", str(inv), "--nameserver", ns_arg(demo_dns),
                               "--output", "json")
    assert code == 1  # the demo's broken Services
    assert "skipped v1 ConfigMap shop/cm" in err
    assert json.loads(out)["results"]


async def test_environment_overrides_the_config_file(tmp_path: Path, demo_dns: Demo) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dns": {"forms": ["short", "fqdn"]}, "inventory": {"file": demo_dns.inventory}}))
    code, out, _ = await run("check", "--config", str(cfg), "--output", "json",
                             env={"SVCPROBE_DNS_NAMESERVERS": ns_arg(demo_dns), "SVCPROBE_DNS_FORMS": "fqdn"})
    assert code == 1
    forms = {r["form"] for r in json.loads(out)["results"] if r["check"] == "dns"}
    assert forms - {"hostname", "reverse"} == {"fqdn"}  # (the endpoint and PTR names have their own settings)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_run_serves_and_stops_cleanly_on_sigterm(tmp_path: Path, demo_dns: Demo) -> None:
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"scheduler": {"interval_seconds": 0.5},
                                   "shutdown": {"drain_seconds": 1.0, "timeout_seconds": 10}}))
    proc = await asyncio.create_subprocess_exec(
        *SVCPROBE, "run", "--config", str(cfg), "--inventory", demo_dns.inventory,
        "--nameserver", ns_arg(demo_dns), "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=CLI_ENV)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, text = await asyncio.to_thread(_get, base + "/metrics")
                if status == 200 and re.search(r"^svcprobe_sweeps_total [1-9]", text, re.M):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "agent did not come up"
            assert proc.returncode is None
            await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(_get, base + "/readyz"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        status, body = await asyncio.to_thread(_get, base + "/readyz")
        assert status == 503 and "draining" in body
        code = await asyncio.wait_for(proc.wait(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    _, err = await proc.communicate()
    assert code == 0, err.decode()
    log = err.decode()
    assert log.index("not ready; draining") < log.index("stopped")


async def test_run_reports_a_taken_port(tmp_path: Path, demo_dns: Demo) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        code, _, err = await run("run", "--inventory", demo_dns.inventory, "--nameserver", ns_arg(demo_dns),
                                 "--listen", f"127.0.0.1:{port}", timeout=30)
    assert code == 2
    assert "address already in use" in err.lower()


async def test_demo_runs_and_finds_what_is_broken() -> None:
    port = free_port()
    code, out, err = await run("demo", "--listen", f"127.0.0.1:{port}", "--interval", "1", "--duration", "4")
    assert code == 0, err
    assert f"http://127.0.0.1:{port}/metrics" in out
    for series in ("shop search dns resolver wrong_answer", "shop reviews dns resolver nxdomain",
                   "shop checkout tcp endpoint refused"):
        assert series in err
    assert "legacy" not in err.split("failing series at the end:")[1]


# --------------------------------------------------------------------------- kubectl-style flags


@pytest.mark.parametrize("command", ["run", "check", "diagnose"])
async def test_help_lists_the_flags_everyone_types(command: str) -> None:
    code, out, _ = await run(command, "--help")
    assert code == 0
    for flag in ("--kubeconfig", "--context", "--config", "--inventory"):
        assert flag in out, (command, flag)
    selection = ("-n NS, --namespace NS", "-l SELECTOR, --selector SELECTOR", "--service NS/NAME")
    for flag in selection:
        assert (flag in out) == (command != "diagnose"), (command, flag)
    assert ("-o {table,json}, --output {table,json}" in out) == (command != "run")


@pytest.mark.parametrize("args", [
    ["check", "--listen", "127.0.0.1:1"],  # check serves nothing
    ["diagnose", "-n", "shop"],  # verdicts are cluster-wide
    ["run", "--output", "json"],
    ["check", "--share", "--agent", "http://127.0.0.1:1"],
])
async def test_flags_that_do_not_apply_are_rejected(args: list[str]) -> None:
    code, _, err = await run(*args)
    assert code == 2 and "unrecognized arguments" in err


async def test_namespace_selector_and_service_flags_narrow_the_check(tmp_path: Path, demo_dns: Demo) -> None:
    base = ["check", "--inventory", demo_dns.inventory, "--nameserver", ns_arg(demo_dns), "-o", "json"]
    code, out, err = await run(*base, "--service", "shop/search", "--service", "shop/frontend")
    assert code == 1, err
    services = {(r["namespace"], r["service"]) for r in json.loads(out)["results"]}
    assert services == {("shop", "search"), ("shop", "frontend"), ("default", "kubernetes")}  # + the canary
    code, out, _ = await run(*base, "-n", "default")
    assert code == 0 and {r["namespace"] for r in json.loads(out)["results"]} == {"default"}
    code, out, _ = await run(*base, "-n", "shop", "-l", "app=nothing-has-this")
    assert {r["service"] for r in json.loads(out)["results"]} == {"kubernetes"}
    code, _, err = await run(*base, "--service", "search")
    assert code == 2 and "selection.services" in err and "NAMESPACE/NAME" in err


def agents_inventory(path: Path, demo: Demo, agents: list[str]) -> None:
    """The demo inventory plus a headless svcprobe/svcprobe Service listing `agents`."""
    doc = yaml.safe_load(Path(demo.inventory).read_text())
    doc["items"] += [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svcprobe", "namespace": "svcprobe"},
         "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"name": "http", "port": 9142}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "svcprobe-x", "namespace": "svcprobe",
                      "labels": {"kubernetes.io/service-name": "svcprobe"}},
         "addressType": "IPv4", "endpoints": [{"addresses": [a]} for a in agents],
         "ports": [{"name": "http", "port": 9142, "protocol": "TCP"}]},
    ]
    path.write_text(yaml.safe_dump(doc))


async def test_check_probes_the_whole_cluster_unless_asked_for_its_share(tmp_path: Path, demo_dns: Demo) -> None:
    """Inside an agent pod (sharding settings in the environment) `check` still probes every
    Service; --share probes this agent's part and says so."""
    inv = tmp_path / "with-agents.yaml"
    agents_inventory(inv, demo_dns, [f"127.0.77.{i}" for i in range(1, 9)])
    pod_env = {"SVCPROBE_POD_IP": "127.0.77.1", "SVCPROBE_POD_NAMESPACE": "svcprobe", "SVCPROBE_SHARDING_REPLICAS": "1"}
    base = ["check", "--inventory", str(inv), "--nameserver", ns_arg(demo_dns), "-o", "json"]
    _, out, _ = await run(*base, env=pod_env)
    whole = json.loads(out)
    assert not whole["notes"]
    _, out, _ = await run(*base, "--share", env=pod_env)
    share = json.loads(out)
    owned = {r["service"] for r in share["results"]} - {"kubernetes", "svcprobe"}
    assert len(owned) < len({r["service"] for r in whole["results"]}) - 2
    assert share["notes"] and share["notes"][0].startswith(f"this agent's share: {len(owned)} of ")
    _, table, _ = await run(*base[:-2], "--share", env=pod_env)
    assert "note: this agent's share:" in table


async def test_outside_the_cluster_check_says_what_to_do(tmp_path: Path, demo_dns: Demo) -> None:
    held = full_backlog("127.0.79.1")  # its connects time out, as a ClusterIP's from outside the cluster
    port = held[0].getsockname()[1]
    try:
        inv = tmp_path / "far.yaml"
        inv.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"clusterIP": "127.0.79.1", "clusterIPs": ["127.0.79.1"], "ports": [{"port": port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "web-x", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.79.2"]}], "ports": [{"port": port}]},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
             "spec": {"clusterIP": "127.0.79.10", "clusterIPs": ["127.0.79.10"],
                      "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}},
        ]}))
        args = ["check", "--inventory", str(inv), "--nameserver", ns_arg(demo_dns), "-o", "json"]
        env = {"SVCPROBE_TCP_TIMEOUT_SECONDS": "0.3"}
        code, out, err = await run(*args, env=env)
        assert code == 1, err
        [note] = json.loads(out)["notes"]
        assert "outside the cluster" in note and "kubectl svcprobe check" in note
        assert f"resolver ({demo_dns.server.address[0]}) is not the cluster DNS Service (127.0.79.10)" in note
        # In a pod (KUBERNETES_SERVICE_HOST set) the same timeouts are a finding, not a hint.
        code, out, _ = await run(*args, env={**env, "KUBERNETES_SERVICE_HOST": "127.0.79.9"})
        assert code == 1 and json.loads(out)["notes"] == []
    finally:
        for sock in held:
            sock.close()


async def test_progress_on_a_terminal_only(demo_dns: Demo) -> None:
    import pty

    args = [*SVCPROBE, "check", "--inventory", demo_dns.inventory, "--nameserver", ns_arg(demo_dns), "-o", "json"]
    leader, follower = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=follower,
                                                    env=CLI_ENV)
        os.close(follower)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    total = len(json.loads(out)["results"])
    assert f"probing: {total}/{total} checks".encode() in shown
    _, _, err = await run("check", "--inventory", demo_dns.inventory, "--nameserver", ns_arg(demo_dns), "-o", "json")
    assert "probing:" not in err  # not a terminal: nothing but real messages on stderr


async def test_kubeconfig_and_context_flags_reach_the_api_client(tmp_path: Path) -> None:
    code, _, err = await run("check", "--kubeconfig", str(tmp_path / "nope.yaml"), "--nameserver", "127.0.0.1:9")
    assert code == 2 and "nope.yaml" in err
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}]}))
    code, _, err = await run("diagnose", "--kubeconfig", str(kubeconfig), "--context", "elsewhere",
                             "--agents-service", "svcprobe/svcprobe")
    assert code == 2 and "elsewhere" in err


async def test_diagnose_refuses_flags_prometheus_makes_pointless(tmp_path: Path) -> None:
    code, _, err = await run("diagnose", "--prometheus", "http://127.0.0.1:9", "--inventory", "x.yaml")
    assert code == 2 and "--inventory: not used with --prometheus" in err
