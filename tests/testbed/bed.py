"""A real Kubernetes test bed in network namespaces, for svcprobe's end-to-end tests.

Everything runs as plain processes (no containers): etcd, kube-apiserver, CoreDNS and kube-proxy
built from their Go modules (tests/testbed/build-*.sh), wired together with network namespaces,
a bridge and veth pairs. Nothing is added to the machine's own network namespace: the bridge
lives in the control-plane namespace, there is no uplink and no default route anywhere, so all
traffic stays between namespaces this package created. Tear-down deletes the namespaces (and with
them every interface, address, route and iptables/nftables rule), kills every process inside them,
and removes the /etc/netns/<ns> directories and the work directory.

This module holds `TestBed`, which composes the parts below into a bed and is what tests use,
and the command line. The parts, one concern per module:

    topology.py       addresses, ranges and namespace names (with the layout), Node, Backend
    prerequisites.py  what the machine needs (Linux, root, tools); BIN, the built binaries
    netns.py          running commands; namespaces, bridge and veth plumbing; removing them
    pki.py            certificates, keys and kubeconfigs
    components.py     the long-running processes (start, stop, logs, waiting) and how etcd,
                      kube-apiserver, CoreDNS, kube-proxy and the backend "pods" are run
    objects.py        Kubernetes objects (selector-less Services, hand-made EndpointSlices, what
                      bring-up creates) and the admin kubectl
    waiting.py        bounded polling: `eventually` for tests
    errors.py         TestBedError, TestBedUnavailable
    nsprobe.py        the probe run inside a node namespace (DNS, getaddrinfo, TCP, HTTP)

Only the standard library is used, so the command line works with any Python >= 3.11. From the
repository root::

    python3 -m tests.testbed.bed up|down|status|kubectl ARGS...|exec NODE CMD...

(`python3 tests/testbed/bed.py ...` works too, from anywhere.) See docs/testbed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a file, python3 tests/testbed/bed.py: make `tests.testbed` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.testbed import components, netns, objects, pki, prerequisites, topology
from tests.testbed.errors import TestBedError, TestBedUnavailable
from tests.testbed.prerequisites import BIN, CACHE, unavailable_reason
from tests.testbed.topology import (
    API_PORT,
    CLUSTER_DOMAIN,
    CP_IP,
    DEFAULT_PREFIX,
    FIRST_BACKEND_HOST,
    KUBE_DNS_IP,
    KUBERNETES_IP,
    LINK_PREFIXLEN,
    MANAGED_BY,
    NO_RESOLVER,
    POD_CIDR,
    SERVICE_CIDR,
    Backend,
    Node,
)
from tests.testbed.waiting import eventually

# What tests import from here (the names this module has always offered).
__all__ = [
    "API_PORT", "BIN", "CACHE", "CLUSTER_DOMAIN", "CP_IP", "DEFAULT_PREFIX", "FIRST_BACKEND_HOST",
    "KUBERNETES_IP", "KUBE_DNS_IP", "LINK_PREFIXLEN", "MANAGED_BY", "NSPROBE", "POD_CIDR",
    "SERVICE_CIDR", "Backend", "Node", "TestBed", "TestBedError", "TestBedUnavailable",
    "eventually", "main", "unavailable_reason",
]

NSPROBE = Path(__file__).resolve().with_name("nsprobe.py")


class TestBed:
    """Brings the bed up and down and drives it. See the module docstring for the layout.

    Typical use (pytest session fixture)::

        bed = TestBed()
        bed.up()
        try: ...
        finally: bed.down()
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        prefix: str | None = None,
        nodes: Sequence[str] | dict[str, str] = ("node1", "node2"),
        dns_replicas: int = 2,
        proxy_mode: str | None = None,
        workdir: str | Path | None = None,
        dns_ttl: int = 5,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.prefix = prefix or os.environ.get("SVCPROBE_TESTBED_PREFIX") or DEFAULT_PREFIX
        if not self.prefix.replace("-", "").isalnum() or len(self.prefix) > 20:
            raise TestBedError(f"bad test bed prefix {self.prefix!r}: use up to 20 letters/digits/-")
        if isinstance(nodes, dict):
            node_namespaces = dict(nodes)
        else:
            node_namespaces = {n: "default" for n in nodes}
        if not 1 <= len(node_namespaces) <= 8:
            raise TestBedError("between 1 and 8 nodes")
        if not 1 <= dns_replicas <= 8:
            raise TestBedError("between 1 and 8 CoreDNS replicas")
        self.proxy_mode = proxy_mode or os.environ.get("SVCPROBE_TESTBED_PROXY_MODE") or "iptables"
        if self.proxy_mode not in ("iptables", "nftables"):
            raise TestBedError(f"proxy mode must be iptables or nftables, not {self.proxy_mode!r}")
        self.node_proxy_mode: dict[str, str] = {}  # nodes switched to the other mode (switch_proxy_mode)
        self.workdir = Path(
            workdir
            or os.environ.get("SVCPROBE_TESTBED_DIR")
            or Path(tempfile.gettempdir()) / f"svcprobe-testbed-{self.prefix}"
        )
        self.dns_ttl = dns_ttl
        self._log = log or (lambda msg: print(f"[testbed] {msg}", file=sys.stderr, flush=True))
        self.cp_netns = topology.cp_netns(self.prefix)
        self.nodes: dict[str, Node] = {
            name: Node(name, topology.node_ip(i), topology.node_netns(self.prefix, name), ns)
            for i, (name, ns) in enumerate(node_namespaces.items())
        }
        self.dns_replicas = dns_replicas
        self.backends: dict[str, Backend] = {}
        self._backend_addresses = topology.BackendAddresses()
        self.processes = components.Processes(self.logs, self.run_dir)
        self._kubectl = objects.Kubectl(self.cp_netns, self.admin_kubeconfig,
                                        self.workdir / "kubectl-cache")
        self._lock: socket.socket | None = None

    # ------------------------------------------------------------------ paths and names
    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def api_url(self) -> str:
        return f"https://{CP_IP}:{API_PORT}"

    def dns_netns(self, replica: int) -> str:
        return topology.dns_netns(self.prefix, replica)

    def dns_ip(self, replica: int) -> str:
        return topology.dns_ip(replica)

    def node(self, name: str | None = None) -> Node:
        if name is None:
            return next(iter(self.nodes.values()))
        try:
            return self.nodes[name]
        except KeyError:
            raise TestBedError(f"no node {name!r} (nodes: {', '.join(self.nodes)})") from None

    binary = staticmethod(prerequisites.binary)
    pod_resolv_conf = staticmethod(topology.pod_resolv_conf)

    def check_prerequisites(self) -> None:
        prerequisites.check(self.proxy_mode)

    # ------------------------------------------------------------------ processes
    def _start(self, name: str, netns_name: str, argv: Sequence[str]) -> subprocess.Popen:
        return self.processes.start(name, netns_name, argv)

    def stop_process(self, name: str, *, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
        """Stops a process started by this bed (also one started by another TestBed instance)."""
        self.processes.stop(name, timeout=timeout, sig=sig)

    def process_running(self, name: str) -> bool:
        return self.processes.running(name)

    # ------------------------------------------------------------------ lock
    def _acquire_lock(self) -> None:
        """One live TestBed per prefix on this machine (abstract socket: nothing on disk)."""
        if self._lock is not None:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(f"\0svcprobe-testbed-{self.prefix}")
        except OSError:
            s.close()
            raise TestBedError(
                f"another process is driving a test bed with prefix {self.prefix!r}; "
                "wait for it, or use SVCPROBE_TESTBED_PREFIX=<other> for a second bed"
            ) from None
        self._lock = s

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------------ network namespaces
    def _our_netns(self) -> list[str]:
        return netns.list_with_prefix(self.prefix)

    def _add_netns(self, netns_name: str, ip: str, host_if: str, resolv: str) -> None:
        """Creates `netns_name` with eth0=ip/16 plugged into the bridge in the cp namespace."""
        netns.add(netns_name, ip, bridge_netns=self.cp_netns, host_if=host_if, resolv=resolv)

    def _kill_netns_processes(self, namespaces: Sequence[str], *, grace: float = 10) -> None:
        netns.kill_processes(namespaces, grace=grace)
        self.processes.reap()  # our own children that were killed

    def _del_netns(self, netns_name: str) -> None:
        self._kill_netns_processes([netns_name])
        netns.delete(netns_name)

    # ------------------------------------------------------------------ kubeconfigs
    def write_kubeconfig(
        self, path: Path, *, cert: str | None = None, token: str | None = None,
        server: str | None = None,
    ) -> Path:
        """Writes a kubeconfig (JSON, which is YAML) for a client cert name in pki/ or a token."""
        return pki.write_kubeconfig(path, pki=self.pki, server=server or self.api_url,
                                    cert=cert, token=token)

    # ------------------------------------------------------------------ bring-up
    def up(self, *, timeout: float = 240) -> TestBed:
        """Builds the whole bed; on any failure tears down what was made and raises."""
        self.check_prerequisites()
        self._acquire_lock()
        started = time.monotonic()
        self.down(_keep_lock=True)  # leftovers of an earlier run with the same prefix
        try:
            self._up(timeout)
        except BaseException:
            logs = self.processes.log_tails()
            self.down()
            if logs:
                self._log("bring-up failed; log tails:\n" + logs)
            raise
        self._log(f"up in {time.monotonic() - started:.1f}s (workdir {self.workdir})")
        return self

    def _up(self, timeout: float) -> None:
        for d in (self.workdir, self.logs, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        pki.make(self.pki)
        self.write_kubeconfig(self.admin_kubeconfig, cert="admin")
        self.write_kubeconfig(self.workdir / "kube-proxy.kubeconfig", cert="kube-proxy")
        self.write_kubeconfig(self.workdir / "coredns.kubeconfig", cert="coredns")
        (self.workdir / "backend.py").write_text(components.BACKEND_SERVER)

        # Control-plane namespace with the bridge; nothing answers DNS there (127.0.0.1:53).
        netns.add_bridge_netns(self.cp_netns, NO_RESOLVER)
        for i, node in enumerate(self.nodes.values(), start=1):
            self._add_netns(node.netns, node.ip, f"vn{i}", self.pod_resolv_conf(node.namespace))
        for r in range(1, self.dns_replicas + 1):
            self._add_netns(self.dns_netns(r), self.dns_ip(r), f"vd{r}", NO_RESOLVER)

        self._start("etcd", self.cp_netns, components.etcd_argv(self.workdir / "etcd"))
        self.processes.wait("etcd /health", lambda: components.etcd_healthy(self.cp_netns), timeout=60,
                   proc="etcd")
        self.start_apiserver(timeout=timeout)
        self._bootstrap()
        for r in range(1, self.dns_replicas + 1):
            self.start_coredns(r, wait=False)
        for node in self.nodes.values():
            self.start_kube_proxy(node.name, wait=False)
        for r in range(1, self.dns_replicas + 1):
            self._wait_coredns(r)
        for node in self.nodes.values():
            self._wait_kube_proxy(node.name)

    def _bootstrap(self) -> None:
        # The bootstrap RBAC (system:node-proxier for kube-proxy) is created asynchronously by the
        # apiserver's post-start hook; /readyz covers it, but be explicit.
        self.processes.wait("bootstrap ClusterRoleBinding system:node-proxier",
                   lambda: self.kubectl("get", "clusterrolebinding", "system:node-proxier",
                                        check=False).returncode == 0, timeout=60)
        self.apply(objects.bootstrap_manifests(self.nodes.values(), self.dns_replicas))
        for node in self.nodes.values():
            self.kubectl("patch", "node", node.name, "--subresource=status", "--type=merge",
                         "-p", objects.node_status_patch(node))

    # ------------------------------------------------------------------ kube-apiserver
    def start_apiserver(self, *, timeout: float = 240) -> None:
        self._start("kube-apiserver", self.cp_netns, components.apiserver_argv(self.pki))
        self.processes.wait("kube-apiserver /readyz", lambda: components.apiserver_ready(self.kubectl),
                   timeout=timeout, interval=1, proc="kube-apiserver")

    def stop_apiserver(self, *, grace: float = 5) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds. (A terminating apiserver stops listening
        at once but keeps open watches for up to 60 s; grace=0 kills it outright.)"""
        if grace <= 0:
            self.stop_process("kube-apiserver", sig=signal.SIGKILL)
        else:
            self.stop_process("kube-apiserver", timeout=grace)

    def restart_apiserver(
        self, *, down_seconds: float = 0, grace: float = 5, timeout: float = 240
    ) -> None:
        """Stops kube-apiserver, optionally stays down a while, starts it, waits until ready."""
        self.stop_apiserver(grace=grace)
        if down_seconds:
            time.sleep(down_seconds)
        self.start_apiserver(timeout=timeout)

    # ------------------------------------------------------------------ CoreDNS
    def corefile(self, replica: int, extra: str = "", kubernetes: str = "") -> str:
        return components.corefile(self.workdir / "coredns.kubeconfig", self.dns_ttl, extra, kubernetes)

    def start_coredns(self, replica: int, *, extra: str = "", kubernetes: str = "", wait: bool = True) -> None:
        """(Re)starts CoreDNS replica `replica` (1-based); `extra` = Corefile lines (hosts, rewrite),
        `kubernetes` = kubernetes plugin options (`ignore empty_service`, `noendpoints`, ...)."""
        if not 1 <= replica <= self.dns_replicas:
            raise TestBedError(f"no CoreDNS replica {replica} (1..{self.dns_replicas})")
        conf = self.workdir / f"Corefile.{replica}"
        conf.write_text(self.corefile(replica, extra, kubernetes))
        self._start(f"coredns-{replica}", self.dns_netns(replica), components.coredns_argv(conf))
        if wait:
            self._wait_coredns(replica)

    def _wait_coredns(self, replica: int) -> None:
        self.processes.wait(f"CoreDNS replica {replica} /ready",
                   lambda: components.coredns_ready(self.dns_netns(replica)),
                   timeout=60, proc=f"coredns-{replica}")

    def stop_coredns(self, replica: int) -> None:
        self.stop_process(f"coredns-{replica}")

    def set_kube_dns_ready(self, ready: dict[int, bool]) -> None:
        """Marks CoreDNS replicas ready/not ready in the kube-dns EndpointSlice."""
        self.apply(objects.kube_dns_slice(self.dns_replicas, ready))

    # ------------------------------------------------------------------ kube-proxy
    def start_kube_proxy(self, node: str, *, wait: bool = True) -> None:
        n = self.node(node)
        config = components.write_kube_proxy_config(
            self.workdir / f"kube-proxy.{n.name}.yaml", n,
            self.workdir / "kube-proxy.kubeconfig", self.node_proxy_mode.get(n.name, self.proxy_mode))
        self._start(f"kube-proxy-{n.name}", n.netns, components.kube_proxy_argv(config))
        if wait:
            self._wait_kube_proxy(n.name)

    def switch_proxy_mode(self, node: str, mode: str) -> None:
        """Restarts kube-proxy on `node` in `mode` (iptables or nftables), from a clean slate:
        every rule of the other mode is flushed first, as `kube-proxy --cleanup` would."""
        if mode not in ("iptables", "nftables"):
            raise TestBedError(f"proxy mode must be iptables or nftables, not {mode!r}")
        n = self.node(node)
        self.flush_proxy_rules(n.name)
        self.node_proxy_mode[n.name] = mode
        self.start_kube_proxy(n.name)

    def proxy_mode_of(self, node: str) -> str:
        return self.node_proxy_mode.get(self.node(node).name, self.proxy_mode)

    def proxy_rules(self, node: str) -> str:
        """The node's kube-proxy rules as text (iptables-save or nft list ruleset)."""
        return components.proxy_rules(self.node(node).netns, self.proxy_mode_of(node))

    def _wait_kube_proxy(self, node: str, *, needle: str = KUBE_DNS_IP) -> None:
        self.processes.wait(f"kube-proxy rules on {node} (for {needle})",
                   lambda: needle in self.proxy_rules(node), timeout=90,
                   proc=f"kube-proxy-{node}")

    def wait_proxy_rule(
        self, node: str, cluster_ip: str, *, endpoints: Iterable[str | Backend] = (),
        timeout: float = 30,
    ) -> None:
        """Waits until kube-proxy on `node` has programmed `cluster_ip` and, if given, a DNAT to
        each endpoint ("IP:PORT", or a Backend for its first port)."""
        needles = [cluster_ip] + [
            f"{e.ip}:{e.ports[0]}" if isinstance(e, Backend) else e for e in endpoints]

        def programmed() -> bool:
            rules = self.proxy_rules(node)
            return all(n in rules for n in needles)

        self.processes.wait(f"kube-proxy rules for {' '.join(needles)} on {node}", programmed,
                   timeout=timeout, proc=f"kube-proxy-{node}")

    def stop_kube_proxy(self, node: str) -> None:
        self.stop_process(f"kube-proxy-{self.node(node).name}")

    def flush_proxy_rules(self, node: str, *, stop_proxy: bool = True) -> None:
        """Removes every netfilter rule in the node namespace (kube-proxy's are the only ones).

        With stop_proxy (default) kube-proxy is stopped first so it cannot repair the damage;
        restore with start_kube_proxy(node)."""
        n = self.node(node)
        if stop_proxy:
            self.stop_kube_proxy(n.name)
        components.flush_rules(n.netns)

    # ------------------------------------------------------------------ kubectl and objects
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Runs kubectl as cluster admin (inside the cp namespace, where the API lives)."""
        return self._kubectl(*args, input=input, check=check, timeout=timeout)

    def apply(self, manifest: objects.Manifest) -> str:
        """kubectl apply: YAML/JSON text, one object, or a list of objects."""
        return self._kubectl.apply(manifest)

    def get_json(self, *args: str) -> dict:
        return self._kubectl.get_json(*args)

    def inventory_yaml(self) -> str:
        """`kubectl get svc,endpointslices -A -o yaml`: the agent's --inventory input."""
        return self.kubectl("get", "svc,endpointslices", "-A", "-o", "yaml").stdout

    def ensure_namespace(self, namespace: str) -> None:
        self.apply(objects.namespace_manifest(namespace))

    service_manifest = staticmethod(objects.service_manifest)
    endpointslice_manifest = staticmethod(objects.endpointslice_manifest)

    def create_service(self, namespace: str, name: str, **kw: Any) -> dict:
        """Creates/updates a selector-less Service; returns it as the API stored it."""
        self.ensure_namespace(namespace)
        self.apply(objects.service_manifest(namespace, name, **kw))
        return self.get_json("service", "-n", namespace, name)

    def set_endpoints(
        self, namespace: str, service: str, endpoints: Sequence[dict | Backend], *,
        ports: Sequence[tuple[str, int, str]] = (("http", 8080, "TCP"),),
        name: str | None = None,
    ) -> None:
        """Creates/replaces the Service's hand-made EndpointSlice (Backends become ready endpoints)."""
        self.apply(objects.endpointslice_manifest(namespace, service, objects.endpoints_of(endpoints),
                                                  ports=ports, name=name))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.kubectl("delete", kind, "-n", namespace, name, "--ignore-not-found", "--wait=false")

    def delete_service(self, namespace: str, name: str) -> None:
        """Deletes the Service and its hand-made EndpointSlices (no controller GC here)."""
        self.delete("service", namespace, name)
        self.kubectl("delete", "endpointslices", "-n", namespace,
                     "-l", objects.hand_made_slices_selector(name),
                     "--ignore-not-found", "--wait=false")

    def create_token(self, namespace: str, service_account: str, *, duration: str = "1h") -> str:
        """Creates the ServiceAccount if needed and returns a TokenRequest token for it."""
        self.ensure_namespace(namespace)
        self.apply(objects.service_account_manifest(namespace, service_account))
        return self.kubectl("create", "token", "-n", namespace, service_account,
                            f"--duration={duration}").stdout.strip()

    # ------------------------------------------------------------------ backends
    def _allocate_backend_ip(self) -> str:
        """Next free address (see topology.BackendAddresses); when it was used before, stale
        neighbour (ARP) entries for it are flushed everywhere, so traffic does not go to the MAC
        address of a deleted namespace."""
        ip, reused = self._backend_addresses.allocate({b.ip for b in self.backends.values()})
        if reused:
            netns.flush_neighbour(self._our_netns(), ip)
        return ip

    def add_backend(self, name: str, ports: Sequence[int] = (8080,), *, start: bool = True) -> Backend:
        """Creates a backend namespace ("pod") with its own IP and (by default) starts its server."""
        if not name.replace("-", "").isalnum() or len(name) > 24:
            raise TestBedError(f"bad backend name {name!r}")
        if name in self.backends:
            raise TestBedError(f"backend {name!r} exists")
        ip = self._allocate_backend_ip()
        netns_name = topology.backend_netns(self.prefix, name)
        self._add_netns(netns_name, ip, f"vb{ip.rsplit('.', 1)[1]}", NO_RESOLVER)
        b = Backend(name, ip, tuple(ports), netns_name, running=False)
        self.backends[name] = b
        if start:
            self.start_backend(name)
        return b

    def start_backend(self, name: str) -> Backend:
        b = self.backends[name]
        ready = self.run_dir / f"backend-{name}.ready"
        ready.unlink(missing_ok=True)
        self._start(f"backend-{name}", b.netns,
                    components.backend_argv(self.workdir / "backend.py", b, ready))
        self.processes.wait(f"backend {name} listening", ready.exists, timeout=20, interval=0.1,
                   proc=f"backend-{name}")
        b.running = True
        return b

    def stop_backend(self, name: str) -> None:
        """Kills the server; the namespace (and IP) stays, so connections are refused."""
        self.stop_process(f"backend-{name}", sig=signal.SIGKILL)
        self.backends[name].running = False

    def remove_backend(self, name: str) -> None:
        """Deletes the backend namespace: its IP stops answering at all."""
        b = self.backends.pop(name)
        self.stop_process(f"backend-{name}", sig=signal.SIGKILL)
        self._del_netns(b.netns)

    # ------------------------------------------------------------------ running things in nodes
    def node_exec(
        self, node: str | None, argv: Sequence[str], *, check: bool = False, timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Runs a command inside a node namespace (with the node's pod-like /etc/resolv.conf)."""
        return netns.run_in(self.node(node).netns, argv, check=check, timeout=timeout, input=input)

    def node_popen(self, node: str | None, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        """Starts a long-running command inside a node namespace; the caller owns the Popen."""
        return netns.popen_in(self.node(node).netns, argv, **kw)

    def probe(self, node: str | None, *args: str, python: str | None = None,
              timeout: float = 30) -> dict:
        """Runs nsprobe.py (dns/resolve/getaddrinfo/tcp) in a node namespace; returns its JSON."""
        cp = self.node_exec(node, [python or sys.executable, str(NSPROBE), *args], timeout=timeout)
        if cp.returncode != 0:
            raise TestBedError(f"nsprobe {shlex.join(args)} failed in {node}: {cp.stderr.strip()}")
        return json.loads(cp.stdout)

    def dns_answer(self, name: str, qtype: str = "A", *, server: str = KUBE_DNS_IP,
                   node: str | None = None) -> set[str] | str:
        """One query from a node namespace: the set of answer data, or the rcode/result text
        ("NXDOMAIN", "timeout", ...) when there is no answer. Needs dnspython."""
        r = self.probe(node, "dns", name, qtype, "--server", server)
        if r["result"] != "ok":
            return r["result"]
        data = {rr["data"] for rr in r["answers"] if rr["type"] == qtype}
        return data if data else r["rcode"]

    def wait_dns(self, name: str, expect: set[str] | str | Callable[[set[str] | str], bool],
                 qtype: str = "A", *, timeout: float = 30) -> None:
        """Waits until every CoreDNS replica answers `expect` (a set of records, an rcode such
        as "NXDOMAIN", or a predicate over what `dns_answer` returns) for `name`: the bed's
        caches have converged on the API state."""
        accept = expect if callable(expect) else (lambda got: got == expect)
        for r in range(1, self.dns_replicas + 1):
            if not self.process_running(f"coredns-{r}"):
                continue  # stopped on purpose
            server = self.dns_ip(r)
            self.processes.wait(f"{name} {qtype} = {expect} at CoreDNS replica {r}",
                       lambda server=server: accept(self.dns_answer(name, qtype, server=server)),
                       timeout=timeout)

    # ------------------------------------------------------------------ status and tear-down
    def status(self) -> dict:
        return {
            "prefix": self.prefix,
            "workdir": str(self.workdir),
            "netns": self._our_netns(),
            "processes": self.processes.pidfiles(),
            "api": self.api_url,
            "kube_dns": KUBE_DNS_IP,
        }

    def down(self, *, _keep_lock: bool = False) -> None:
        """Idempotent tear-down: processes, namespaces (with their rules), /etc/netns, workdir."""
        if not _keep_lock:
            self._acquire_lock()
        started = time.monotonic()
        try:
            keep = os.environ.get("SVCPROBE_TESTBED_KEEP_LOGS")
            if keep and self.logs.exists():
                dest = Path(keep)
                dest.mkdir(parents=True, exist_ok=True)
                for f in self.logs.glob("*.log"):
                    shutil.copy2(f, dest / f.name)
            names = self._our_netns()
            self._kill_netns_processes(names, grace=3)
            for name in self.processes.names():
                self.stop_process(name, timeout=5)
            for netns_name in names:
                self._del_netns(netns_name)
            netns.remove_etc_dirs(self.prefix)
            for name in self.processes.pidfile_names():  # started by another instance
                self.stop_process(name, timeout=5)
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.backends.clear()
            left = self._our_netns()
            if left:
                raise TestBedError(f"tear-down left network namespaces behind: {left}")
            if names:
                self._log(f"down in {time.monotonic() - started:.1f}s ({len(names)} namespaces)")
        finally:
            if not _keep_lock:
                self._release_lock()

    def close(self) -> None:
        """down() and release the prefix lock."""
        self.down()

    def __enter__(self) -> TestBed:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bed.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefix", help=f"namespace prefix (default {DEFAULT_PREFIX})")
    ap.add_argument("--nodes", default="node1,node2", help="comma-separated node names")
    ap.add_argument("--proxy-mode", choices=("iptables", "nftables"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="bring the bed up and leave it running")
    sub.add_parser("down", help="tear everything down (idempotent)")
    sub.add_parser("status", help="show namespaces and processes")
    k = sub.add_parser("kubectl", help="run kubectl as admin")
    k.add_argument("args", nargs=argparse.REMAINDER)
    e = sub.add_parser("exec", help="run a command in a node namespace")
    e.add_argument("node")
    e.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    bed = TestBed(prefix=a.prefix, nodes=a.nodes.split(","), proxy_mode=a.proxy_mode)
    try:
        if a.cmd == "up":
            bed.up()
            print(json.dumps(bed.status(), indent=1))
        elif a.cmd == "down":
            bed.down()
        elif a.cmd == "status":
            print(json.dumps(bed.status(), indent=1))
        elif a.cmd == "kubectl":
            cp = bed.kubectl(*a.args, check=False)
            sys.stdout.write(cp.stdout)
            sys.stderr.write(cp.stderr)
            return cp.returncode
        elif a.cmd == "exec":
            return subprocess.call(["ip", "netns", "exec", bed.node(a.node).netns, *a.args])
    except TestBedError as exc:
        print(f"bed.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
