"""The bed's long-running processes, and how each of them is run.

`Processes` starts a command inside a network namespace with its output in logs/NAME.log and its
pid in run/NAME.pid, stops it (also one that another TestBed with the same work directory
started), and waits for a condition while checking that the process meant to bring it about
is still alive.

Below it, one section per component: the command line, configuration and health check of etcd,
kube-apiserver, CoreDNS and kube-proxy, and the program of the backend "pods". When they are
started, and with what, is decided by bed.TestBed.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.testbed import netns
from tests.testbed.errors import TestBedError
from tests.testbed.prerequisites import binary
from tests.testbed.topology import API_PORT, CLUSTER_DOMAIN, CP_IP, POD_CIDR, SERVICE_CIDR, Backend, Node
from tests.testbed.waiting import wait_for


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file, or "(no log)"."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class Processes:
    """The bed's long-running processes, by name ("etcd", "coredns-1", "backend-web", ...)."""

    def __init__(self, logs: Path, run_dir: Path) -> None:
        self.logs = logs
        self.run_dir = run_dir
        self._procs: dict[str, subprocess.Popen] = {}

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, netns_name: str, argv: Sequence[str]) -> subprocess.Popen:
        """Starts a long-running process in a namespace (stopping one of the same name first);
        stdout+stderr are appended to logs/NAME.log."""
        self.stop(name)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as logf:
            logf.write(f"==== {time.strftime('%H:%M:%S')} start: {shlex.join(argv)}\n".encode())
            logf.flush()
            p = netns.popen_in(
                netns_name,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._procs[name] = p
        (self.run_dir / f"{name}.pid").write_text(f"{p.pid}\n")
        return p

    def stop(self, name: str, *, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
        """Stops a process started by this bed (also one started by another TestBed instance,
        found through its pid file)."""
        pidfile = self.run_dir / f"{name}.pid"
        p = self._procs.pop(name, None)
        pid = p.pid if p is not None else None
        if pid is None and pidfile.exists():
            try:
                pid = int(pidfile.read_text().strip())
            except ValueError:
                pid = None
        if pid is not None:
            _kill_pid(pid, p, timeout=timeout, sig=sig)
        pidfile.unlink(missing_ok=True)

    def running(self, name: str) -> bool:
        """True while a process this instance started under `name` has not exited."""
        p = self._procs.get(name)
        return p is not None and p.poll() is None

    def names(self) -> list[str]:
        """The processes this instance started and has not stopped."""
        return list(self._procs)

    def pidfiles(self) -> dict[str, str]:
        """NAME -> pid, from run/*.pid: every process started by any instance and not stopped."""
        if not self.run_dir.exists():
            return {}
        return {f.stem: f.read_text().strip() for f in sorted(self.run_dir.glob("*.pid"))}

    def pidfile_names(self) -> list[str]:
        """The names in run/*.pid (pidfiles() without reading the pids)."""
        return [f.stem for f in self.run_dir.glob("*.pid")] if self.run_dir.exists() else []

    def reap(self) -> None:
        """Collects the exit status of our children that were killed from outside."""
        for p in self._procs.values():
            p.poll()

    def wait(
        self,
        what: str,
        probe: Callable[[], Any],
        *,
        timeout: float,
        interval: float = 0.5,
        proc: str | None = None,
    ) -> Any:
        """Polls probe() until it returns something truthy; bounded by `timeout` seconds. With
        `proc`, fails at once if that process exits, and either error shows the end of its log."""
        if proc is None:
            return wait_for(what, probe, timeout=timeout, interval=interval)
        log = self.log_path(proc)

        def watch() -> None:
            p = self._procs.get(proc)
            if p is not None and p.poll() is not None:
                raise TestBedError(
                    f"{proc} exited with {p.returncode} while waiting for {what}; "
                    f"log {log}:\n{tail(log)}"
                )

        return wait_for(what, probe, timeout=timeout, interval=interval, watch=watch,
                        detail=lambda: f"; log {log}:\n{tail(log)}")

    def log_tails(self) -> str:
        """The end of every log, for a failed bring-up."""
        if not self.logs.exists():
            return ""
        return "\n".join(f"--- {f.name}\n{tail(f, 15)}" for f in sorted(self.logs.glob("*.log")))


def _kill_pid(pid: int, p: subprocess.Popen | None, *, timeout: float, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    if p is not None:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        return
    deadline = time.monotonic() + timeout
    while netns.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if netns.alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Run with `python3 -c HTTP_GET URL` inside a namespace: exit 0 on HTTP 200, print the body.
HTTP_GET = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        print(r.read().decode(errors='replace'))
        sys.exit(0 if r.status == 200 else 1)
except Exception as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"""


def http_get(netns_name: str, url: str) -> subprocess.CompletedProcess:
    """GET `url` from inside a namespace (exit status 0 on HTTP 200, the body on stdout)."""
    return netns.run_in(netns_name, [sys.executable, "-c", HTTP_GET, url], check=False, timeout=10)


# ---------------------------------------------------------------------- etcd
def etcd_argv(data_dir: Path) -> list[str]:
    """etcd on the control-plane namespace's loopback only, without fsync (data is throw-away)."""
    return [
        "etcd", "--name", "testbed", "--data-dir", str(data_dir),
        "--listen-client-urls", "http://127.0.0.1:2379",
        "--advertise-client-urls", "http://127.0.0.1:2379",
        "--listen-peer-urls", "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", "testbed=http://127.0.0.1:2380",
        "--unsafe-no-fsync", "--logger=zap", "--log-outputs=stderr", "--log-level=warn",
    ]


def etcd_healthy(cp_netns: str) -> bool:
    cp = http_get(cp_netns, "http://127.0.0.1:2379/health")
    return cp.returncode == 0 and '"health":"true"' in cp.stdout.replace(" ", "")


# ---------------------------------------------------------------------- kube-apiserver
def apiserver_argv(pki: Path) -> list[str]:
    """kube-apiserver with client-cert authentication, RBAC, and ServiceAccount token signing."""
    return [
        binary("kube-apiserver"),
        "--etcd-servers=http://127.0.0.1:2379",
        "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", f"--advertise-address={CP_IP}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
        "--v=1",
    ]


def apiserver_ready(kubectl: Callable[..., subprocess.CompletedProcess]) -> bool:
    """/readyz says ok, asked through `kubectl` (TestBed.kubectl)."""
    cp = kubectl("get", "--raw=/readyz", check=False, timeout=15)
    return cp.returncode == 0 and cp.stdout.strip() == "ok"


# ---------------------------------------------------------------------- CoreDNS
# Names the stand-in upstream resolves (every other name outside the cluster is NXDOMAIN):
# what an ExternalName Service can point at.
UPSTREAM_ZONE, UPSTREAM_ADDRESS = "resolvable.test", "198.18.0.250"


def corefile(kubeconfig: Path, ttl: int, extra: str = "", kubernetes: str = "") -> str:
    """The Corefile of a replica; `extra` = lines for the cluster server block (hosts, rewrite),
    `kubernetes` = option lines for the kubernetes plugin (`ignore empty_service`, ...)."""
    indented = "".join(f"    {line}\n" for line in extra.strip().splitlines()) if extra else ""
    options = "".join(f"        {line}\n" for line in kubernetes.strip().splitlines()) if kubernetes else ""
    # No `forward`: the bed has no upstream resolver and must never use the machine's. Names
    # outside the cluster zones get NXDOMAIN from a stand-in "upstream" block, as a real
    # upstream would answer for names that do not exist (instead of SERVFAIL), except the
    # names under UPSTREAM_ZONE, which resolve.
    return (
        f"{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{\n"
        "    errors\n"
        "    health :8080\n"
        "    ready :8181\n"
        f"{indented}"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig} testbed\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        f"        ttl {ttl}\n"
        f"{options}"
        "    }\n"
        f"    cache {ttl}\n"
        "    loadbalance\n"
        "}\n"
        ".:53 {\n"
        f"    template IN A {UPSTREAM_ZONE} {{\n"
        f"        answer \"{{{{ .Name }}}} 60 IN A {UPSTREAM_ADDRESS}\"\n"
        "    }\n"
        "    template ANY ANY {\n"
        "        rcode NXDOMAIN\n"
        "    }\n"
        "}\n"
    )


def coredns_argv(conf: Path) -> list[str]:
    return [binary("coredns"), "-conf", str(conf)]


def coredns_ready(dns_netns: str) -> bool:
    return http_get(dns_netns, "http://127.0.0.1:8181/ready").returncode == 0


# ---------------------------------------------------------------------- kube-proxy
def kube_proxy_config(node: Node, kubeconfig: Path, proxy_mode: str) -> dict:
    """KubeProxyConfiguration for `node` in iptables or nftables mode, syncing at once."""
    cfg: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node.name,
        "bindAddress": node.ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "mode": proxy_mode,
        "clusterCIDR": POD_CIDR,
        "nodePortAddresses": [f"{node.ip}/32"],
        # kube-proxy must not touch nf_conntrack_max: read-only inside a network namespace.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }
    if proxy_mode == "iptables":
        cfg["iptables"] = {"minSyncPeriod": "0s", "syncPeriod": "30s"}
    else:
        cfg["nftables"] = {"minSyncPeriod": "0s", "syncPeriod": "30s"}
    return cfg


def write_kube_proxy_config(path: Path, node: Node, kubeconfig: Path, proxy_mode: str) -> Path:
    path.write_text(json.dumps(kube_proxy_config(node, kubeconfig, proxy_mode), indent=1) + "\n")
    return path


def kube_proxy_argv(config: Path) -> list[str]:
    return [binary("kube-proxy"), f"--config={config}", "--v=1"]


def proxy_rules(node_netns: str, proxy_mode: str) -> str:
    """The namespace's netfilter rules as text (iptables-save or nft list ruleset)."""
    if proxy_mode == "iptables":
        return netns.run_in(node_netns, ["iptables-save"], check=False).stdout
    return netns.run_in(node_netns, ["nft", "list", "ruleset"], check=False).stdout


def flush_node_port_rules(node_netns: str, proxy_mode: str) -> None:
    """Removes kube-proxy's NodePort dispatch only (its ClusterIP rules stay): the iptables
    KUBE-NODEPORTS chain, or the nftables `service-nodeports` verdict map."""
    if proxy_mode == "iptables":
        netns.run_in(node_netns, ["iptables", "-t", "nat", "-F", "KUBE-NODEPORTS"])
    else:
        netns.run_in(node_netns, ["nft", "flush", "map", "ip", "kube-proxy", "service-nodeports"])


def flush_rules(node_netns: str) -> None:
    """Removes every netfilter rule in the namespace (`nft flush ruleset`)."""
    netns.run_in(node_netns, ["nft", "flush", "ruleset"])


# ---------------------------------------------------------------------- backend "pods"
# The backend "pod": accepts TCP on each port, writes one line naming itself, closes.
BACKEND_SERVER = '''\
"""svcprobe test bed backend: usage backend.py NAME IP PORT[,PORT...] READYFILE"""
import selectors, signal, socket, sys

name, ip, ports, ready = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
sel = selectors.DefaultSelector()
for port in ports.split(","):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, int(port)))
    s.listen(128)
    sel.register(s, selectors.EVENT_READ, int(port))
open(ready, "w").close()
while True:
    for key, _ in sel.select():
        try:
            conn, peer = key.fileobj.accept()
        except OSError:
            continue
        try:
            conn.settimeout(1)
            conn.sendall(f"svcprobe-testbed {name} {ip}:{key.data} from {peer[0]}\\n".encode())
        except OSError:
            pass
        finally:
            conn.close()
'''


def backend_argv(script: Path, backend: Backend, ready: Path) -> list[str]:
    """Runs BACKEND_SERVER (written to `script`); it creates `ready` once it listens."""
    return [sys.executable, str(script), backend.name, backend.ip,
            ",".join(str(p) for p in backend.ports), str(ready)]
