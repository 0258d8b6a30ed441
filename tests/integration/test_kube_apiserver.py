"""Kubernetes discovery against a real kube-apiserver + etcd on loopback.

The fake API server (test_kube_discovery.py) covers the edge cases a real server will not produce
on demand; this module checks the same client against the real thing: its list pagination and
continue tokens, its watch stream and resourceVersions, its object encoding, client-certificate
auth from a kubeconfig, and a relist after an API server restart (the cluster moved on meanwhile,
so the restarted server's watch cache answers the re-watch from the old resourceVersion with an
ERROR 410 event).

etcd (Debian's) and kube-apiserver (built by scripts/deps.d/50-testbed.sh, the test bed's build)
run in a temporary directory, bound to 127.0.0.1 on free ports, with a throw-away PKI. A missing
binary is an error, not a skip: run scripts/install-test-deps.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.demo.dnsserver import DnsServer
from agent.discovery.kube import KubeSource
from agent.health import Health
from tests.support.kubeapi import endpoint_slice, service
from tests.testbed.bed import BIN

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=svcprobe-apiserver-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    for name, subject, eku, san in (
            ("apiserver", "/CN=kube-apiserver", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
            ("admin", "/O=system:masters/CN=svcprobe-test-admin", "clientAuth", "")):
        (d / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={eku}\n" + (f"subjectAltName={san}\n" if san else ""))
        _openssl(d, "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject)
        _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt")
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "sa.key")
    _openssl(d, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")


class RealApiServer:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.etcd_port, self.peer_port, self.port = _free_port(), _free_port(), _free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = workdir / "admin.kubeconfig"

    def _start(self, name: str, argv: list[str]) -> None:
        with open(self.dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                cwd=self.dir, start_new_session=True)

    def _stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p is None:
            return
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def _wait_ready(self, timeout: float = 120) -> None:
        ctx = self.ssl_context()
        deadline = time.monotonic() + timeout
        last = ""
        import urllib.request

        while time.monotonic() < deadline:
            p = self.procs["kube-apiserver"]
            if p.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited: {self._tail('kube-apiserver')}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", context=ctx, timeout=5) as r:
                    if r.read().strip() == b"ok":
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise RuntimeError(f"kube-apiserver not ready: {last}: {self._tail('kube-apiserver')}")

    def _tail(self, name: str) -> str:
        return "\n".join((self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-20:])

    def start(self) -> RealApiServer:
        missing = [str(b) for b in (BIN / "kube-apiserver",) if not os.access(b, os.X_OK)]
        if not shutil.which("etcd"):
            missing.append("etcd")
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: run scripts/install-test-deps")
        _pki(self.dir)
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        self._start("etcd", [
            "etcd", "--name", "t", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"t={peer}"])
        self.start_apiserver()
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "t", "cluster": {
                "server": self.url,
                "certificate-authority-data": base64.b64encode(
                    (self.dir / "ca.crt").read_bytes()).decode()}}],
            "users": [{"name": "t", "user": {
                "client-certificate": str(self.dir / "admin.crt"),
                "client-key": str(self.dir / "admin.key")}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        }))
        return self

    def start_apiserver(self) -> None:
        d = self.dir
        self._start("kube-apiserver", [
            str(BIN / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            f"--cert-dir={d}", f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}", f"--client-ca-file={d / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--authorization-mode=RBAC", "--service-cluster-ip-range=198.18.0.0/16",
            "--profiling=false", "--v=1",
        ])
        self._wait_ready()

    def restart_apiserver(self) -> None:
        self._stop("kube-apiserver")
        self.start_apiserver()

    def stop(self) -> None:
        self._stop("kube-apiserver")
        self._stop("etcd")

    async def bump_etcd_revision(self, http: aiohttp.ClientSession, writes: int = 3) -> None:
        """Writes to a scratch key outside /registry, through etcd's gRPC gateway: etcd's
        revision (the resourceVersion clock) moves on without any Kubernetes object changing."""
        key = base64.b64encode(b"/svcprobe-test/bump").decode()
        for i in range(writes):
            async with http.post(f"http://127.0.0.1:{self.etcd_port}/v3/kv/put",
                                 json={"key": key, "value": base64.b64encode(b"%d" % i).decode()}
                                 ) as r:
                assert r.status == 200, await r.text()

    async def compact_etcd(self, http: aiohttp.ClientSession) -> None:
        """Compact etcd's history up to now, as kube-apiserver does every 5 minutes."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"
        async with http.post(f"{base}/range", json={"key": base64.b64encode(b"/").decode()}) as r:
            rev = (await r.json())["header"]["revision"]
        async with http.post(f"{base}/compaction", json={"revision": rev, "physical": True}) as r:
            assert r.status == 200, await r.text()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        ctx.load_cert_chain(str(self.dir / "admin.crt"), str(self.dir / "admin.key"))
        return ctx


class Api:
    """Just enough of a client to create and delete objects (as kubectl would)."""

    def __init__(self, server: RealApiServer, session: aiohttp.ClientSession) -> None:
        self.server, self.http = server, session
        self.ssl = server.ssl_context()

    @staticmethod
    def _path(resource: str, namespace: str) -> str:
        if resource == "services":
            return f"/api/v1/namespaces/{namespace}/services"
        return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.server.url + path, json=body,
                                     ssl=self.ssl) as resp:
            doc = await resp.json()
            if resp.status >= 300:
                raise AssertionError(f"{method} {path}: {resp.status} {doc.get('message')}")
            return doc

    async def namespace(self, name: str) -> None:
        await self.request("POST", "/api/v1/namespaces",
                           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    @staticmethod
    def _clean(obj: dict[str, Any]) -> dict[str, Any]:
        """The fake's builders set fields the server owns: drop them."""
        meta = {k: v for k, v in obj["metadata"].items() if k not in ("uid", "creationTimestamp")}
        return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}

    async def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = self._clean(obj)
        ns = obj["metadata"]["namespace"]
        return await self.request("POST", self._path(resource, ns), obj)

    async def replace(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = self._clean(obj)
        m = obj["metadata"]
        current = await self.request("GET", f"{self._path(resource, m['namespace'])}/{m['name']}")
        obj = {**obj, "metadata": {**m, "resourceVersion": current["metadata"]["resourceVersion"]}}
        return await self.request("PUT", f"{self._path(resource, m['namespace'])}/{m['name']}", obj)

    async def delete(self, resource: str, namespace: str, name: str) -> None:
        await self.request("DELETE", f"{self._path(resource, namespace)}/{name}")


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApiServer]:
    server = RealApiServer(tmp_path_factory.mktemp("apiserver"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
async def api(apiserver: RealApiServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(apiserver, session)


async def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _ns_services(src: KubeSource, ns: str) -> set[str]:
    return {name for n, name in src.inventory.services if n == ns}


def _ns_slices(src: KubeSource, ns: str) -> set[str]:
    return {name for n, name in src.inventory.slices if n == ns}


class GatedSleep:
    """Backoff sleeps that wait while the gate is closed (to keep the client away a while)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.waiting = 0

    async def __call__(self, delay: float) -> None:
        self.waiting += 1
        try:
            await self.open.wait()
            await asyncio.sleep(min(delay, 0.2))
        finally:
            self.waiting -= 1


async def test_sync_and_watch_against_a_real_api_server(api: Api,
                                                        apiserver: RealApiServer) -> None:
    ns = "shop"
    await api.namespace(ns)
    for i in range(7):
        await api.create("services", service(ns, f"web{i}", cluster_ip=f"198.18.1.{i + 1}"))
        await api.create("endpointslices", endpoint_slice(
            ns, f"web{i}-x", f"web{i}", [f"198.19.1.{i + 1}", f"198.19.2.{i + 1}"]))
    health = Health()
    src = KubeSource(health, kubeconfig=str(apiserver.kubeconfig), page_size=3,
                     publish_interval=0.05)
    task = asyncio.create_task(src.run())
    try:
        assert await src.wait_synced(30), src.last_error
        assert _ns_services(src, ns) == {f"web{i}" for i in range(7)}
        assert ("default", "kubernetes") in src.inventory.services  # made by the API server
        inv = src.inventory
        web3 = inv.services[(ns, "web3")]
        assert [str(a) for a in web3.cluster_ips] == ["198.18.1.4"]
        assert [str(e.address) for e in inv.ready_endpoints(web3)] == ["198.19.1.4",
                                                                        "198.19.2.4"]
        assert health.relists == {"services": 1, "endpointslices": 1}
        assert health.skipped["malformed"] == 0

        await api.create("services", service(ns, "cart", cluster_ip="198.18.1.50"))
        await api.replace("services", service(ns, "web1", cluster_ip="198.18.1.2",
                                              ports=(("https", 443),)))
        await api.delete("services", ns, "web2")
        await api.delete("endpointslices", ns, "web0-x")
        await wait_for(lambda: "cart" in _ns_services(src, ns)
                       and "web2" not in _ns_services(src, ns)
                       and "web0-x" not in _ns_slices(src, ns)
                       and src.inventory.services[(ns, "web1")].ports[0].port == 443,
                       "watch events")
        assert health.relists == {"services": 1, "endpointslices": 1}
        assert health.inventory_services == len(src.inventory)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_api_server_restart_with_changes_while_away(api: Api,
                                                          apiserver: RealApiServer) -> None:
    ns = "away"
    await api.namespace(ns)
    for i in range(4):
        await api.create("services", service(ns, f"s{i}", cluster_ip=f"198.18.2.{i + 1}"))
        await api.create("endpointslices", endpoint_slice(ns, f"s{i}-x", f"s{i}",
                                                          [f"198.19.3.{i + 1}"]))
    health = Health()
    gate = GatedSleep()
    src = KubeSource(health, kubeconfig=str(apiserver.kubeconfig), page_size=2,
                     publish_interval=0.05, sleep=gate, backoff_initial=0.1)
    task = asyncio.create_task(src.run())
    try:
        assert await src.wait_synced(30), src.last_error
        assert _ns_services(src, ns) == {"s0", "s1", "s2", "s3"}
        gate.open.clear()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, apiserver._stop, "kube-apiserver")
        await wait_for(lambda: gate.waiting == 2, "both watches broken and backing off")
        # The cluster moves on while the API server is down: the restarted server's watch
        # cache starts after the client's resourceVersion.
        await apiserver.bump_etcd_revision(api.http)
        await loop.run_in_executor(None, apiserver.start_apiserver)
        # Changes the client does not see as they happen.
        await api.delete("services", ns, "s1")
        await api.delete("endpointslices", ns, "s1-x")
        await api.create("services", service(ns, "s9", cluster_ip="198.18.2.99"))
        # A server whose cache is still initializing serves watches from etcd: make sure
        # etcd has no history to offer either.
        await apiserver.compact_etcd(api.http)
        gate.open.set()
        await wait_for(lambda: _ns_services(src, ns) == {"s0", "s2", "s3", "s9"}
                       and _ns_slices(src, ns) == {"s0-x", "s2-x", "s3-x"},
                       "state after the restart")
        # The server answered the re-watch from the old resourceVersion with an ERROR 410
        # event ("too old resource version"); the client relisted and dropped what was deleted.
        for resource in ("services", "endpointslices"):
            assert health.watch_restarts.get((resource, "connection_error"), 0) >= 1
            assert health.watch_restarts.get((resource, "expired"), 0) == 1
            assert health.relists[resource] == 2
        assert health.skipped["malformed"] == 0
    finally:
        gate.open.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_default_tcp_deny_list_matches_what_the_api_refuses_in_endpointslices(api: Api) -> None:
    """tcp.deny_cidrs' default claims to be what Kubernetes refuses in EndpointSlices: ask the
    real API server about one address of each class, and about ones the agent does probe."""
    import ipaddress

    from agent import settings as settings_mod

    deny, _ = settings_mod.tcp_networks(settings_mod.load(overrides={"dns.nameservers": ("127.0.0.1:9",)}))
    await api.namespace("addrpolicy")
    samples = {"IPv4": ["0.0.0.0", "127.0.0.1", "127.9.9.9", "169.254.169.254", "224.0.0.1", "239.1.1.1",
                        "198.18.1.1", "198.51.100.7"],
               "IPv6": ["::1", "fe80::1", "ff02::1", "fd00::1", "2001:db8::1"]}
    verdicts: dict[str, tuple[bool, bool]] = {}  # address -> (API accepts, agent probes)
    for family, addresses in samples.items():
        for i, addr in enumerate(addresses):
            obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": f"{family.lower()}-{i}", "namespace": "addrpolicy"},
                   "addressType": family, "endpoints": [{"addresses": [addr]}],
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
            async with api.http.post(api.server.url + api._path("endpointslices", "addrpolicy"), json=obj,
                                     ssl=api.ssl) as resp:
                accepted = resp.status < 300
            ip = ipaddress.ip_address(addr)
            verdicts[addr] = (accepted, not any(ip in net for net in deny))
    print(f"\n[address policy] (API accepts, agent probes): {verdicts}")
    # Everything the API refuses, the agent refuses too; what it accepts and is unicast, the agent probes.
    assert all(probes is False for accepted, probes in verdicts.values() if not accepted)
    assert all(probes for addr, (accepted, probes) in verdicts.items()
               if accepted and not ipaddress.ip_address(addr).is_multicast)


async def _check(apiserver: RealApiServer, nameserver: tuple[str, int], namespace: str,
                 grace: float) -> tuple[int, list[dict[str, Any]]]:
    """`svcprobe check -o json` as a user runs it, against the API server: its exit code and
    the namespace's DNS results. No TCP: the ClusterIPs and endpoints lead nowhere."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SVCPROBE_")},
           "SVCPROBE_TCP_ENABLED": "false", "SVCPROBE_DNS_GRACE_SECONDS": str(grace)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "check", "--kubeconfig", str(apiserver.kubeconfig),
        "--nameserver", f"{nameserver[0]}:{nameserver[1]}", "--cluster-domain", "cluster.local",
        "-n", namespace, "-o", "json", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode in (0, 1), err.decode()
    results = json.loads(out)["results"]
    return proc.returncode, [r for r in results if r["namespace"] == namespace and r["check"] == "dns"]


async def test_check_right_after_a_change_reports_converging(api: Api, apiserver: RealApiServer) -> None:
    """Issue #11: `svcprobe check` a second after a Service was created reported its DNS
    answers as failing, since whatever existed when it started counted as settled. DNS that
    has not caught up (this server knows no Service) is converging for dns.grace_seconds from
    the creation the API server recorded, then failing."""
    ns = "fresh"
    await api.namespace(ns)
    dns_server = DnsServer({}, zone="cluster.local")
    address = await dns_server.start()
    try:
        made = await api.create("services", service(ns, "web", cluster_ip="198.18.3.1"))
        await api.create("services", service(ns, "db", headless=True, ports=(("pg", 5432),)))
        await api.create("endpointslices", endpoint_slice(ns, "db-x", "db", ["198.19.3.1"], port=5432,
                                                          port_name="pg"))
        created = datetime.datetime.fromisoformat(made["metadata"]["creationTimestamp"]).timestamp()

        grace = 60.0
        _, fresh = await _check(apiserver, address, ns, grace)
        assert {r["service"] for r in fresh} == {"web", "db"}
        assert {r["result"] for r in fresh} == {"nxdomain"}
        assert all(r["converging"] and r["passing"] for r in fresh), fresh
        assert all(r["detail"].startswith("converging") for r in fresh)
        assert all(r["finished_at"] < created + grace for r in fresh)  # else this machine is far too slow

        # The window starts at the recorded creations, not when `check` starts: with 1 s of
        # grace, over before this second check begins (db was made a moment after web), the
        # same answers fail.
        await asyncio.sleep(max(0.0, created + 3 - time.time()))
        code, fresh = await _check(apiserver, address, ns, 1.0)
        assert {r["result"] for r in fresh} == {"nxdomain"}
        assert not any(r["converging"] or r["passing"] for r in fresh), fresh
        assert code == 1
    finally:
        await dns_server.stop()
