"""Shared pieces of the reliability tier: inventories, the agent in-process, network namespaces.

Network rules of this tier: traffic goes only to loopback or to addresses inside network
namespaces the test creates itself (198.19.254.0/24, a /28 per test process); iptables rules
exist only inside those namespaces, which are deleted (rules and all) when the test ends,
whether it passed or not. Every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent import runner, settings as settings_mod

ROOT = Path(__file__).resolve().parents[2]
ZONE = "cluster.local"


# -- inventories -------------------------------------------------------------------------------
@dataclasses.dataclass
class Svc:
    namespace: str
    name: str
    cluster_ip: str
    port: int
    endpoints: tuple[tuple[str, int], ...] = ()


def manifest(services: Iterable[Svc]) -> str:
    """What `kubectl get svc,endpointslices -A -o yaml` prints for these Services."""
    items: list[dict[str, Any]] = []
    for s in services:
        items.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {"type": "ClusterIP", "clusterIP": s.cluster_ip, "clusterIPs": [s.cluster_ip],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "ports": [{"name": "http", "port": s.port, "protocol": "TCP", "targetPort": s.port}]},
        })
        if s.endpoints:
            items.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{s.name}-abcde", "namespace": s.namespace,
                             "labels": {"kubernetes.io/service-name": s.name}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                                                "terminating": False}}
                              for a, _ in s.endpoints],
                "ports": [{"name": "http", "port": s.endpoints[0][1], "protocol": "TCP"}],
            })
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                           "items": items})


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- the agent, in-process ---------------------------------------------------------------------
def agent_settings(nameserver: str, inventory_file: Path, **overrides: Any) -> settings_mod.Settings:
    values: dict[str, Any] = {
        "inventory.file": str(inventory_file),
        "inventory.reload_seconds": 0.5,
        "dns.nameservers": (nameserver,),
        "dns.cluster_domain": ZONE,
        "dns.ndots": 5,
        "dns.search": (),
        "dns.timeout_seconds": 0.4,
        "dns.attempts": 2,
        "dns.grace_seconds": 0.0,
        "dns.query_budget_per_second": 2000.0,
        "dns.query_budget_burst": 400,
        "tcp.timeout_seconds": 0.5,
        "scheduler.interval_seconds": 1.0,
        "tcp.endpoint_interval_seconds": 0.0,  # endpoint changes show at the next sweep
        "shutdown.drain_seconds": 0.0,
        "listen": "127.0.0.1:0",
        "tcp.deny_cidrs": (),  # the backends are on loopback, which is denied by default
    }
    values.update(overrides)
    return settings_mod.load(overrides=values)


Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclasses.dataclass
class Running:
    agent: runner.Agent
    base: str
    http: aiohttp.ClientSession
    task: asyncio.Task[None]

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.get(self.base + path, **kw) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def metrics(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
        return out

    async def results(self) -> dict[str, Any]:
        status, body = await self.get("/api/v1/results")
        assert status == 200, body
        return body

    def alive(self) -> None:
        assert not self.task.done(), f"the agent stopped: {self.task!r}"

    async def sweeps(self, n: int, *, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until `n` more sweeps completed (bounded); return the results after the last."""
        target = self.agent.store.sweeps + n
        await wait_for(lambda: self.agent.store.sweeps >= target, f"{n} more sweep(s)", timeout,
                       alive=self.alive)
        return await self.results()


async def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0,
                   alive: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def run_agent(s: settings_mod.Settings) -> AsyncIterator[Running]:
    agent = runner.build(s)
    stop = asyncio.Event()
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(agent.run(stop=stop, on_listening=lambda h, p: listening.set_result(f"http://{h}:{p}")))
    base = await asyncio.wait_for(listening, 10)
    async with aiohttp.ClientSession() as http:
        r = Running(agent, base, http, task)
        await wait_for(lambda: agent.store.sweeps >= 1, "the first sweep", 30, alive=r.alive)
        try:
            yield r
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert task.exception() is None


def failing_series(m: Samples) -> set[tuple[str, ...]]:
    return {(l["namespace"], l["service"], l["check"], l["path"], l["result"])
            for l, v in m.get("svcprobe_service_failing", []) if v == 1}


def counter(m: Samples, name: str, **labels: str) -> float:
    return sum(v for l, v in m.get(name, []) if all(l.get(k) == x for k, x in labels.items()))


def by_result(results: dict[str, Any], check: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results["results"]:
        if r["check"] == check:
            out[r["result"]] = out.get(r["result"], 0) + 1
    return out


# -- network namespaces ------------------------------------------------------------------------
def netns_available() -> str | None:
    """None when this machine can run the namespace tests, else why not."""
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables inside them)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


class Netns:
    """A network namespace joined to this one by a veth pair on a private /28 of 198.19.254.0/24.

    `host` is this side's address, `addr(i)` the i-th address inside (i = 1 .. 13). Deleting the
    namespace removes its iptables rules and the veth pair with it.
    """

    def __init__(self) -> None:
        k = os.getpid() % 16
        self.name = f"svcprel-{os.getpid()}"
        self.outside = f"svrl{os.getpid() % 100000}o"
        self.inside = f"svrl{os.getpid() % 100000}i"
        self.net = ipaddress.ip_network(f"198.19.254.{16 * k}/28")
        self.host = str(self.net[1])
        self.procs: list[subprocess.Popen[bytes]] = []

    def addr(self, i: int) -> str:
        assert 1 <= i <= 13
        return str(self.net[1 + i])

    def up(self) -> Netns:
        self.down()
        plen = self.net.prefixlen
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
            _run("ip", "link", "set", self.inside, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host}/{plen}", "dev", self.outside)
            _run("ip", "link", "set", self.outside, "up")
            self.exec("ip", "link", "set", "lo", "up")
            for i in range(1, 14):
                self.exec("ip", "addr", "add", f"{self.addr(i)}/{plen}", "dev", self.inside)
            self.exec("ip", "link", "set", self.inside, "up")
        except BaseException:
            self.down()
            raise
        return self

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.name, *cmd, check=check)

    def iptables(self, *args: str) -> None:
        self.exec("iptables", "-w", "5", *args)

    def dropped(self, chain: str = "INPUT") -> int:
        """Packets matched by DROP/REJECT rules of `chain` inside the namespace."""
        out = self.exec("iptables", "-w", "5", "-L", chain, "-v", "-n", "-x").stdout
        total = 0
        for line in out.splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] in ("DROP", "REJECT"):
                total += int(parts[0])
        return total

    def spawn(self, *cmd: str) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the namespace; it prints 'ready' when it is."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the child exits (EOF) if it cannot start
        if b"ready" not in line:
            proc.kill()
            proc.wait(10)
            err = proc.stderr.read().decode() if proc.stderr else ""
            self.kill(proc)
            raise RuntimeError(f"{cmd!r} did not start in {self.name}: {line!r} {err}")
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def down(self) -> None:
        for proc in list(self.procs):
            self.kill(proc)
        _run("ip", "netns", "del", self.name, check=False)
        _run("ip", "link", "del", self.outside, check=False)


@contextlib.contextmanager
def netns() -> Iterator[Netns]:
    why = netns_available()
    if why:
        pytest.skip(why)
    ns = Netns().up()
    try:
        yield ns
    finally:
        ns.down()
