"""A real Kubernetes test bed in network namespaces, for svcprobe's end-to-end tests.

Everything runs as plain processes (no containers): etcd, kube-apiserver, CoreDNS and kube-proxy
built from their Go modules (tests/testbed/build-*.sh), wired together with network namespaces,
a bridge and veth pairs. Nothing is added to the machine's own network namespace: the bridge
lives in the control-plane namespace, there is no uplink and no default route anywhere, so all
traffic stays between namespaces this module created. Tear-down deletes the namespaces (and with
them every interface, address, route and iptables/nftables rule), kills every process inside them,
and removes the /etc/netns/<ns> directories and the work directory.

Topology (PREFIX defaults to "svcpe2e", see SVCPROBE_TESTBED_PREFIX)::

    PREFIX-cp       bridge br0 198.19.0.1/16; etcd on 127.0.0.1:2379, kube-apiserver :6443
    PREFIX-node1..  198.19.0.2, .3, ...; kube-proxy; pod-like resolv.conf -> kube-dns ClusterIP
    PREFIX-dns1..   CoreDNS replicas 198.19.1.2, .3, ... (the kube-system/kube-dns endpoints)
    PREFIX-be-NAME  TCP backends ("pods") 198.19.1.10 and up, behind hand-made EndpointSlices

    Service CIDR 198.18.0.0/16: 198.18.0.1 = default/kubernetes, 198.18.0.10 = kube-system/kube-dns

Only the standard library is used, so the module also works as a script with any Python >= 3.11::

    python3 tests/testbed/bed.py up|down|status|kubectl ARGS...|exec NODE CMD...

See docs/testbed.md.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import ipaddress
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
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

CACHE = Path(os.environ.get("SVCPROBE_CACHE") or Path.home() / ".cache" / "svcprobe")
BIN = CACHE / "bin"

SERVICE_CIDR = "198.18.0.0/16"
KUBERNETES_IP = "198.18.0.1"
KUBE_DNS_IP = "198.18.0.10"
CP_IP = "198.19.0.1"
LINK_PREFIXLEN = 16  # every namespace's eth0 is on 198.19.0.0/16, through the bridge
POD_CIDR = "198.19.1.0/24"
FIRST_BACKEND_HOST = 10
CLUSTER_DOMAIN = "cluster.local"
API_PORT = 6443
MANAGED_BY = "svcprobe-testbed"

DEFAULT_PREFIX = "svcpe2e"
NSPROBE = Path(__file__).resolve().with_name("nsprobe.py")


class TestBedError(RuntimeError):
    """The test bed could not do what was asked; the message says why (with log excerpts)."""


class TestBedUnavailable(TestBedError):
    """The test bed cannot run on this machine at all (not Linux, or not root)."""


def unavailable_reason() -> str | None:
    """Why the bed cannot run here (tests skip with this), or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"the Kubernetes test bed needs Linux network namespaces (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the Kubernetes test bed needs root (network namespaces, iptables)"
    return None


@dataclasses.dataclass
class Backend:
    """A TCP server in its own network namespace, standing in for a pod."""

    name: str
    ip: str
    ports: tuple[int, ...]
    netns: str
    running: bool = True


@dataclasses.dataclass
class Node:
    name: str
    ip: str
    netns: str
    namespace: str  # the Kubernetes namespace of the "pod" whose resolv.conf the netns gets


def eventually(
    probe: Callable[[], Any], *, timeout: float = 30, interval: float = 0.5, what: str = ""
) -> Any:
    """Polls probe() until it returns something truthy (bounded); returns it or raises
    AssertionError with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what or probe!r}; last: {last!r}")
        time.sleep(interval)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(")", 1)[-1].strip().startswith("Z")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


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
        self.workdir = Path(
            workdir
            or os.environ.get("SVCPROBE_TESTBED_DIR")
            or Path(tempfile.gettempdir()) / f"svcprobe-testbed-{self.prefix}"
        )
        self.dns_ttl = dns_ttl
        self._log = log or (lambda msg: print(f"[testbed] {msg}", file=sys.stderr, flush=True))
        self.cp_netns = f"{self.prefix}-cp"
        self.nodes: dict[str, Node] = {
            name: Node(name, f"198.19.0.{2 + i}", f"{self.prefix}-{name}", ns)
            for i, (name, ns) in enumerate(node_namespaces.items())
        }
        self.dns_replicas = dns_replicas
        self.backends: dict[str, Backend] = {}
        self._next_backend_host = FIRST_BACKEND_HOST
        self._ever_used: set[str] = set()
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock: socket.socket | None = None
        self._started = False

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
        return f"{self.prefix}-dns{replica}"

    def dns_ip(self, replica: int) -> str:
        return f"198.19.1.{1 + replica}"

    def node(self, name: str | None = None) -> Node:
        if name is None:
            return next(iter(self.nodes.values()))
        try:
            return self.nodes[name]
        except KeyError:
            raise TestBedError(f"no node {name!r} (nodes: {', '.join(self.nodes)})") from None

    @staticmethod
    def binary(name: str) -> str:
        return str(BIN / name)

    # ------------------------------------------------------------------ prerequisites
    def check_prerequisites(self) -> None:
        reason = unavailable_reason()
        if reason:
            raise TestBedUnavailable(reason)
        problems = []
        for tool in ("ip", "openssl", "etcd"):
            if not shutil.which(tool):
                problems.append(f"`{tool}` not on PATH")
        if self.proxy_mode == "iptables":
            for tool in ("iptables", "iptables-save", "iptables-restore"):
                if not shutil.which(tool):
                    problems.append(f"`{tool}` not on PATH (kube-proxy iptables mode)")
        if not shutil.which("nft"):
            problems.append("`nft` not on PATH")
        for name in ("kube-apiserver", "kube-proxy", "kubectl", "coredns"):
            if not os.access(BIN / name, os.X_OK):
                problems.append(f"{BIN / name} missing")
        if problems:
            raise TestBedError(
                "test bed prerequisites missing: "
                + "; ".join(problems)
                + ". Install them with scripts/install-test-deps (runs scripts/deps.d/50-testbed.sh)."
            )

    # ------------------------------------------------------------------ low-level helpers
    def _run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        try:
            cp = subprocess.run(
                list(argv), input=input, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise TestBedError(f"timed out after {timeout}s: {shlex.join(argv)}") from exc
        if check and cp.returncode != 0:
            raise TestBedError(
                f"command failed ({cp.returncode}): {shlex.join(argv)}\n{cp.stderr.strip()}"
                f"\n{cp.stdout.strip()}".rstrip()
            )
        return cp

    def _ns(self, netns: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess:
        return self._run(["ip", "netns", "exec", netns, *argv], **kw)

    def _wait(
        self,
        what: str,
        probe: Callable[[], Any],
        *,
        timeout: float,
        interval: float = 0.5,
        proc: str | None = None,
    ) -> Any:
        """Polls probe() until it returns something truthy; bounded by `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            if proc is not None:
                p = self._procs.get(proc)
                if p is not None and p.poll() is not None:
                    raise TestBedError(
                        f"{proc} exited with {p.returncode} while waiting for {what}; "
                        f"log {self.logs / (proc + '.log')}:\n{_tail(self.logs / (proc + '.log'))}"
                    )
            if time.monotonic() > deadline:
                extra = ""
                if proc is not None:
                    extra = f"; log {self.logs / (proc + '.log')}:\n{_tail(self.logs / (proc + '.log'))}"
                raise TestBedError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
            time.sleep(interval)

    def _start(self, name: str, netns: str, argv: Sequence[str]) -> subprocess.Popen:
        """Starts a long-running process in a namespace; stdout+stderr go to logs/NAME.log."""
        self.stop_process(name)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as logf:
            logf.write(f"==== {time.strftime('%H:%M:%S')} start: {shlex.join(argv)}\n".encode())
            logf.flush()
            p = subprocess.Popen(
                ["ip", "netns", "exec", netns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        self._procs[name] = p
        (self.run_dir / f"{name}.pid").write_text(f"{p.pid}\n")
        return p

    def stop_process(self, name: str, *, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
        """Stops a process started by this bed (also one started by another TestBed instance)."""
        pidfile = self.run_dir / f"{name}.pid"
        p = self._procs.pop(name, None)
        pid = p.pid if p is not None else None
        if pid is None and pidfile.exists():
            try:
                pid = int(pidfile.read_text().strip())
            except ValueError:
                pid = None
        if pid is not None:
            self._kill_pid(pid, p, timeout=timeout, sig=sig)
        pidfile.unlink(missing_ok=True)

    @staticmethod
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
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def process_running(self, name: str) -> bool:
        p = self._procs.get(name)
        return p is not None and p.poll() is None

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
        cp = self._run(["ip", "netns", "list"], check=False)
        names = [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.prefix + "-")]

    def _add_netns(self, netns: str, ip: str, host_if: str, resolv: str) -> None:
        """Creates `netns` with eth0=ip/16 plugged into the bridge in the cp namespace."""
        etc = Path("/etc/netns") / netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(resolv)
        self._run(["ip", "netns", "add", netns])
        self._run(
            ["ip", "-n", self.cp_netns, "link", "add", host_if, "type", "veth",
             "peer", "name", "eth0", "netns", netns]
        )
        self._run(["ip", "-n", self.cp_netns, "link", "set", host_if, "master", "br0", "up"])
        self._run(["ip", "-n", netns, "link", "set", "lo", "up"])
        self._run(["ip", "-n", netns, "addr", "add", f"{ip}/{LINK_PREFIXLEN}", "dev", "eth0"])
        self._run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        # Only the Service CIDR is routed (to the cp namespace, which does not forward): traffic
        # to a ClusterIP without kube-proxy rules goes nowhere, and there is no default route.
        self._run(["ip", "-n", netns, "route", "add", SERVICE_CIDR, "via", CP_IP])

    def _kill_netns_processes(self, namespaces: Sequence[str], *, grace: float = 10) -> None:
        """SIGTERM every process in the namespaces, SIGKILL what is left after `grace` seconds."""
        pids: set[int] = set()
        for netns in namespaces:
            out = self._run(["ip", "netns", "pids", netns], check=False).stdout.split()
            pids.update(int(p) for p in out if p.isdigit())
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while pids and time.monotonic() < deadline:
                pids = {pid for pid in pids if _alive(pid)}
                if pids:
                    time.sleep(0.05)
            if not pids:
                break
        for p in self._procs.values():  # reap our own children that were killed
            p.poll()

    def _del_netns(self, netns: str) -> None:
        self._kill_netns_processes([netns])
        self._run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(Path("/etc/netns") / netns, ignore_errors=True)

    # ------------------------------------------------------------------ PKI and kubeconfigs
    def _openssl(self, *args: str) -> None:
        self._run(["openssl", *args])

    def _make_pki(self) -> None:
        d = self.pki
        d.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl(
            "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
            "-days", "30", "-sha256", "-subj", "/CN=svcprobe-testbed-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )

        def leaf(name: str, subject: str, eku: str, san: str = "") -> None:
            ext = d / f"{name}.ext"
            ext.write_text(
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage={eku}\n" + (f"subjectAltName={san}\n" if san else "")
            )
            self._openssl(
                "req", "-new", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                "-subj", subject,
            )
            self._openssl(
                "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
                "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "30", "-sha256",
                "-extfile", str(ext), "-out", str(d / f"{name}.crt"),
            )

        sans = ",".join(
            [f"DNS:{n}" for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "localhost")]
            + [f"IP:{ip}" for ip in ("127.0.0.1", CP_IP, KUBERNETES_IP)]
        )
        leaf("apiserver", "/CN=kube-apiserver", "serverAuth", sans)
        leaf("admin", "/O=system:masters/CN=svcprobe-testbed-admin", "clientAuth")
        leaf("kube-proxy", "/CN=system:kube-proxy", "clientAuth")
        leaf("coredns", "/CN=system:coredns", "clientAuth")
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(d / "sa.key"))
        self._openssl("pkey", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))

    def write_kubeconfig(
        self, path: Path, *, cert: str | None = None, token: str | None = None,
        server: str | None = None,
    ) -> Path:
        """Writes a kubeconfig (JSON, which is YAML) for a client cert name in pki/ or a token."""
        user: dict[str, str] = {}
        if cert:
            user["client-certificate-data"] = _b64(self.pki / f"{cert}.crt")
            user["client-key-data"] = _b64(self.pki / f"{cert}.key")
        if token:
            user["token"] = token
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testbed", "cluster": {
                "server": server or self.api_url,
                "certificate-authority-data": _b64(self.pki / "ca.crt")}}],
            "users": [{"name": "testbed", "user": user}],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "testbed"}}],
            "current-context": "testbed",
        }
        path.write_text(json.dumps(cfg, indent=1) + "\n")
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ bring-up
    def up(self, *, timeout: float = 240) -> "TestBed":
        """Builds the whole bed; on any failure tears down what was made and raises."""
        self.check_prerequisites()
        self._acquire_lock()
        started = time.monotonic()
        self.down(_keep_lock=True)  # leftovers of an earlier run with the same prefix
        self._started = True
        try:
            self._up(timeout)
        except BaseException:
            logs = self._collect_log_tails()
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
        self._make_pki()
        self.write_kubeconfig(self.admin_kubeconfig, cert="admin")
        self.write_kubeconfig(self.workdir / "kube-proxy.kubeconfig", cert="kube-proxy")
        self.write_kubeconfig(self.workdir / "coredns.kubeconfig", cert="coredns")
        (self.workdir / "backend.py").write_text(_BACKEND_SERVER)

        # Control-plane namespace with the bridge; nothing answers DNS there (127.0.0.1:53).
        cp_etc = Path("/etc/netns") / self.cp_netns
        cp_etc.mkdir(parents=True, exist_ok=True)
        (cp_etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        self._run(["ip", "netns", "add", self.cp_netns])
        self._run(["ip", "-n", self.cp_netns, "link", "set", "lo", "up"])
        self._run(["ip", "-n", self.cp_netns, "link", "add", "br0", "type", "bridge"])
        self._run(["ip", "-n", self.cp_netns, "addr", "add", f"{CP_IP}/{LINK_PREFIXLEN}", "dev", "br0"])
        self._run(["ip", "-n", self.cp_netns, "link", "set", "br0", "up"])

        for i, node in enumerate(self.nodes.values(), start=1):
            self._add_netns(node.netns, node.ip, f"vn{i}", self.pod_resolv_conf(node.namespace))
        for r in range(1, self.dns_replicas + 1):
            self._add_netns(self.dns_netns(r), self.dns_ip(r), f"vd{r}", "nameserver 127.0.0.1\n")

        self._start_etcd()
        self._wait("etcd /health", self._etcd_healthy, timeout=60, proc="etcd")
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

    def pod_resolv_conf(self, namespace: str) -> str:
        return (
            f"search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
            f"nameserver {KUBE_DNS_IP}\n"
            "options ndots:5\n"
        )

    # etcd ---------------------------------------------------------------
    def _start_etcd(self) -> None:
        data = self.workdir / "etcd"
        self._start("etcd", self.cp_netns, [
            "etcd", "--name", "testbed", "--data-dir", str(data),
            "--listen-client-urls", "http://127.0.0.1:2379",
            "--advertise-client-urls", "http://127.0.0.1:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "testbed=http://127.0.0.1:2380",
            "--unsafe-no-fsync", "--logger=zap", "--log-outputs=stderr", "--log-level=warn",
        ])

    def _etcd_healthy(self) -> bool:
        cp = self._ns(self.cp_netns, [sys.executable, "-c", _HTTP_GET, "http://127.0.0.1:2379/health"],
                      check=False, timeout=10)
        return cp.returncode == 0 and '"health":"true"' in cp.stdout.replace(" ", "")

    # kube-apiserver -----------------------------------------------------
    def start_apiserver(self, *, timeout: float = 240) -> None:
        p = self.pki
        self._start("kube-apiserver", self.cp_netns, [
            self.binary("kube-apiserver"),
            "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", f"--advertise-address={CP_IP}",
            f"--cert-dir={p}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            "--v=1",
        ])
        self._wait("kube-apiserver /readyz", self._apiserver_ready, timeout=timeout, interval=1,
                   proc="kube-apiserver")

    def _apiserver_ready(self) -> bool:
        cp = self.kubectl("get", "--raw=/readyz", check=False, timeout=15)
        return cp.returncode == 0 and cp.stdout.strip() == "ok"

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

    def _bootstrap(self) -> None:
        # The bootstrap RBAC (system:node-proxier for kube-proxy) is created asynchronously by the
        # apiserver's post-start hook; /readyz covers it, but be explicit.
        self._wait("bootstrap ClusterRoleBinding system:node-proxier",
                   lambda: self.kubectl("get", "clusterrolebinding", "system:node-proxier",
                                        check=False).returncode == 0, timeout=60)
        objs: list[dict] = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "system:coredns"},
             "rules": [
                 {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                  "verbs": ["list", "watch"]},
                 {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                  "verbs": ["list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "system:coredns"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "system:coredns"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                           "name": "system:coredns"}]},
            self.service_manifest(
                "kube-system", "kube-dns", cluster_ip=KUBE_DNS_IP,
                ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
                labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}),
            self._kube_dns_slice(),
        ]
        for node in self.nodes.values():
            objs.append({"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": node.name, "labels": {
                             "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}}})
        self.apply(objs)
        for node in self.nodes.values():
            status = {"status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                               {"type": "Hostname", "address": node.name}]}}
            self.kubectl("patch", "node", node.name, "--subresource=status", "--type=merge",
                         "-p", json.dumps(status))

    def _kube_dns_slice(self, ready: dict[int, bool] | None = None) -> dict:
        ready = ready or {}
        eps = [{"ip": self.dns_ip(r), "ready": ready.get(r, True),
                "target": f"coredns-{r}"}
               for r in range(1, self.dns_replicas + 1)]
        return self.endpointslice_manifest(
            "kube-system", "kube-dns", eps,
            ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")], name="kube-dns-testbed")

    # CoreDNS ------------------------------------------------------------
    def corefile(self, replica: int, extra: str = "") -> str:
        kubeconfig = self.workdir / "coredns.kubeconfig"
        indented = "".join(f"    {line}\n" for line in extra.strip().splitlines()) if extra else ""
        # No `forward`: the bed has no upstream resolver and must never use the machine's. Names
        # outside the cluster zones get NXDOMAIN from a stand-in "upstream" block, as a real
        # upstream would answer for names that do not exist (instead of SERVFAIL).
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
            f"        ttl {self.dns_ttl}\n"
            "    }\n"
            f"    cache {self.dns_ttl}\n"
            "    loadbalance\n"
            "}\n"
            ".:53 {\n"
            "    template ANY ANY {\n"
            "        rcode NXDOMAIN\n"
            "    }\n"
            "}\n"
        )

    def start_coredns(self, replica: int, *, extra: str = "", wait: bool = True) -> None:
        """(Re)starts CoreDNS replica `replica` (1-based); `extra` = Corefile lines (hosts, rewrite)."""
        if not 1 <= replica <= self.dns_replicas:
            raise TestBedError(f"no CoreDNS replica {replica} (1..{self.dns_replicas})")
        conf = self.workdir / f"Corefile.{replica}"
        conf.write_text(self.corefile(replica, extra))
        self._start(f"coredns-{replica}", self.dns_netns(replica),
                    [self.binary("coredns"), "-conf", str(conf)])
        if wait:
            self._wait_coredns(replica)

    def _wait_coredns(self, replica: int) -> None:
        def ready() -> bool:
            cp = self._ns(self.dns_netns(replica),
                          [sys.executable, "-c", _HTTP_GET, "http://127.0.0.1:8181/ready"],
                          check=False, timeout=10)
            return cp.returncode == 0
        self._wait(f"CoreDNS replica {replica} /ready", ready, timeout=60, proc=f"coredns-{replica}")

    def stop_coredns(self, replica: int) -> None:
        self.stop_process(f"coredns-{replica}")

    def set_kube_dns_ready(self, ready: dict[int, bool]) -> None:
        """Marks CoreDNS replicas ready/not ready in the kube-dns EndpointSlice."""
        self.apply(self._kube_dns_slice(ready))

    # kube-proxy ---------------------------------------------------------
    def start_kube_proxy(self, node: str, *, wait: bool = True) -> None:
        n = self.node(node)
        cfg = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.workdir / "kube-proxy.kubeconfig")},
            "hostnameOverride": n.name,
            "bindAddress": n.ip,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "mode": self.proxy_mode,
            "clusterCIDR": POD_CIDR,
            "nodePortAddresses": [f"{n.ip}/32"],
            # kube-proxy must not touch nf_conntrack_max: read-only inside a network namespace.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }
        if self.proxy_mode == "iptables":
            cfg["iptables"] = {"minSyncPeriod": "0s", "syncPeriod": "30s"}
        else:
            cfg["nftables"] = {"minSyncPeriod": "0s", "syncPeriod": "30s"}
        path = self.workdir / f"kube-proxy.{n.name}.yaml"
        path.write_text(json.dumps(cfg, indent=1) + "\n")
        self._start(f"kube-proxy-{n.name}", n.netns,
                    [self.binary("kube-proxy"), f"--config={path}", "--v=1"])
        if wait:
            self._wait_kube_proxy(n.name)

    def proxy_rules(self, node: str) -> str:
        """The node's kube-proxy rules as text (iptables-save or nft list ruleset)."""
        n = self.node(node)
        if self.proxy_mode == "iptables":
            return self._ns(n.netns, ["iptables-save"], check=False).stdout
        return self._ns(n.netns, ["nft", "list", "ruleset"], check=False).stdout

    def _wait_kube_proxy(self, node: str, *, needle: str = KUBE_DNS_IP) -> None:
        self._wait(f"kube-proxy rules on {node} (for {needle})",
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

        self._wait(f"kube-proxy rules for {' '.join(needles)} on {node}", programmed,
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
        self._ns(n.netns, ["nft", "flush", "ruleset"])

    # ------------------------------------------------------------------ kubectl and objects
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Runs kubectl as cluster admin (inside the cp namespace, where the API lives)."""
        return self._ns(self.cp_netns, [
            self.binary("kubectl"), f"--kubeconfig={self.admin_kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}", *args,
        ], input=input, check=check, timeout=timeout)

    def apply(self, manifest: str | dict | Iterable[dict]) -> str:
        """kubectl apply: YAML/JSON text, one object, or a list of objects."""
        if isinstance(manifest, str):
            text = manifest
        elif isinstance(manifest, dict):
            text = json.dumps(manifest)
        else:
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})
        return self.kubectl("apply", "--server-side", "--force-conflicts",
                            "--field-manager=svcprobe-testbed", "-f", "-", input=text).stdout

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def inventory_yaml(self) -> str:
        """`kubectl get svc,endpointslices -A -o yaml`: the agent's --inventory input."""
        return self.kubectl("get", "svc,endpointslices", "-A", "-o", "yaml").stdout

    def ensure_namespace(self, namespace: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    @staticmethod
    def service_manifest(
        namespace: str,
        name: str,
        *,
        ports: Sequence[tuple[str, int, str] | tuple[str, int, str, int | str]] = (("http", 80, "TCP"),),
        cluster_ip: str | None = None,
        headless: bool = False,
        external_name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict:
        """A selector-less Service (the bed has no controller to make EndpointSlices)."""
        spec: dict[str, Any] = {}
        if external_name:
            spec = {"type": "ExternalName", "externalName": external_name}
        else:
            spec["type"] = "ClusterIP"
            if headless:
                spec["clusterIP"] = "None"
            elif cluster_ip:
                spec["clusterIP"] = cluster_ip
        if ports:
            spec["ports"] = []
            for p in ports:
                port = {"name": p[0], "port": p[1], "protocol": p[2]}
                if len(p) > 3:
                    port["targetPort"] = p[3]
                spec["ports"].append(port)
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "spec": spec}

    @staticmethod
    def endpointslice_manifest(
        namespace: str,
        service: str,
        endpoints: Sequence[dict],
        *,
        ports: Sequence[tuple[str, int, str]] = (("http", 8080, "TCP"),),
        name: str | None = None,
    ) -> dict:
        """A hand-made EndpointSlice. Each endpoint: {"ip", optional "ready" (default True),
        "serving", "terminating", "hostname", "node", "target" (pod name)}."""
        eps = []
        for e in endpoints:
            cond = {"ready": e.get("ready", True)}
            for key in ("serving", "terminating"):
                if key in e:
                    cond[key] = e[key]
            ep: dict[str, Any] = {"addresses": [e["ip"]], "conditions": cond}
            if e.get("hostname"):
                ep["hostname"] = e["hostname"]
            if e.get("node"):
                ep["nodeName"] = e["node"]
            if e.get("target"):
                ep["targetRef"] = {"kind": "Pod", "namespace": namespace, "name": e["target"]}
            eps.append(ep)
        return {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-testbed", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "ports": [{"name": n, "port": port, "protocol": proto} for n, port, proto in ports],
            "endpoints": eps,
        }

    def create_service(self, namespace: str, name: str, **kw: Any) -> dict:
        """Creates/updates a selector-less Service; returns it as the API stored it."""
        self.ensure_namespace(namespace)
        self.apply(self.service_manifest(namespace, name, **kw))
        return self.get_json("service", "-n", namespace, name)

    def set_endpoints(
        self, namespace: str, service: str, endpoints: Sequence[dict | Backend], *,
        ports: Sequence[tuple[str, int, str]] = (("http", 8080, "TCP"),),
        name: str | None = None,
    ) -> None:
        """Creates/replaces the Service's hand-made EndpointSlice (Backends become ready endpoints)."""
        eps = [{"ip": e.ip, "target": e.name} if isinstance(e, Backend) else e for e in endpoints]
        self.apply(self.endpointslice_manifest(namespace, service, eps, ports=ports, name=name))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.kubectl("delete", kind, "-n", namespace, name, "--ignore-not-found", "--wait=false")

    def delete_service(self, namespace: str, name: str) -> None:
        """Deletes the Service and its hand-made EndpointSlices (no controller GC here)."""
        self.delete("service", namespace, name)
        self.kubectl("delete", "endpointslices", "-n", namespace,
                     "-l", f"kubernetes.io/service-name={name},"
                           f"endpointslice.kubernetes.io/managed-by={MANAGED_BY}",
                     "--ignore-not-found", "--wait=false")

    def create_token(self, namespace: str, service_account: str, *, duration: str = "1h") -> str:
        """Creates the ServiceAccount if needed and returns a TokenRequest token for it."""
        self.ensure_namespace(namespace)
        self.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": service_account, "namespace": namespace}})
        return self.kubectl("create", "token", "-n", namespace, service_account,
                            f"--duration={duration}").stdout.strip()

    # ------------------------------------------------------------------ backends
    def _allocate_backend_ip(self) -> str:
        """Next free address, round-robin: a freed address is reused as late as possible, and
        then stale neighbour (ARP) entries for it are flushed everywhere, so traffic does not go
        to the MAC address of a deleted namespace."""
        used = {b.ip for b in self.backends.values()}
        net = ipaddress.ip_network(POD_CIDR)
        hosts = list(range(FIRST_BACKEND_HOST, net.num_addresses - 1))
        start = hosts.index(self._next_backend_host) if self._next_backend_host in hosts else 0
        for host in hosts[start:] + hosts[:start]:
            ip = str(net.network_address + host)
            if ip in used:
                continue
            self._next_backend_host = host + 1
            if ip in self._ever_used:
                for netns in self._our_netns():
                    self._run(["ip", "-n", netns, "neigh", "flush", "to", ip], check=False)
            self._ever_used.add(ip)
            return ip
        raise TestBedError("no free backend address left in " + POD_CIDR)

    def add_backend(self, name: str, ports: Sequence[int] = (8080,), *, start: bool = True) -> Backend:
        """Creates a backend namespace ("pod") with its own IP and (by default) starts its server."""
        if not name.replace("-", "").isalnum() or len(name) > 24:
            raise TestBedError(f"bad backend name {name!r}")
        if name in self.backends:
            raise TestBedError(f"backend {name!r} exists")
        ip = self._allocate_backend_ip()
        netns = f"{self.prefix}-be-{name}"
        self._add_netns(netns, ip, f"vb{ip.rsplit('.', 1)[1]}", "nameserver 127.0.0.1\n")
        b = Backend(name, ip, tuple(ports), netns, running=False)
        self.backends[name] = b
        if start:
            self.start_backend(name)
        return b

    def start_backend(self, name: str) -> Backend:
        b = self.backends[name]
        ready = self.run_dir / f"backend-{name}.ready"
        ready.unlink(missing_ok=True)
        self._start(f"backend-{name}", b.netns, [
            sys.executable, str(self.workdir / "backend.py"), name, b.ip,
            ",".join(str(p) for p in b.ports), str(ready)])
        self._wait(f"backend {name} listening", ready.exists, timeout=20, interval=0.1,
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
        return self._ns(self.node(node).netns, argv, check=check, timeout=timeout, input=input)

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
            self._wait(f"{name} {qtype} = {expect} at CoreDNS replica {r}",
                       lambda: accept(self.dns_answer(name, qtype, server=self.dns_ip(r))),
                       timeout=timeout)

    def node_popen(self, node: str | None, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        """Starts a long-running command inside a node namespace; the caller owns the Popen."""
        return subprocess.Popen(["ip", "netns", "exec", self.node(node).netns, *argv], **kw)

    # ------------------------------------------------------------------ status and tear-down
    def status(self) -> dict:
        return {
            "prefix": self.prefix,
            "workdir": str(self.workdir),
            "netns": self._our_netns(),
            "processes": {
                f.stem: f.read_text().strip() for f in sorted(self.run_dir.glob("*.pid"))
            } if self.run_dir.exists() else {},
            "api": self.api_url,
            "kube_dns": KUBE_DNS_IP,
        }

    def _collect_log_tails(self) -> str:
        if not self.logs.exists():
            return ""
        return "\n".join(f"--- {f.name}\n{_tail(f, 15)}" for f in sorted(self.logs.glob("*.log")))

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
            for name in list(self._procs):
                self.stop_process(name, timeout=5)
            for netns in names:
                self._del_netns(netns)
            for d in Path("/etc/netns").glob(f"{self.prefix}-*") if Path("/etc/netns").exists() else []:
                shutil.rmtree(d, ignore_errors=True)
            try:
                Path("/etc/netns").rmdir()  # only if empty: it did not exist before us
            except OSError:
                pass
            if self.run_dir.exists():
                for f in self.run_dir.glob("*.pid"):
                    self.stop_process(f.stem, timeout=5)
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
        self._started = False

    def close(self) -> None:
        """down() and release the prefix lock."""
        self.down()

    def __enter__(self) -> "TestBed":
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


# Run with `python3 -c _HTTP_GET URL` inside a namespace: exit 0 on HTTP 200, print the body.
_HTTP_GET = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        print(r.read().decode(errors='replace'))
        sys.exit(0 if r.status == 200 else 1)
except Exception as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"""

# The backend "pod": accepts TCP on each port, writes one line naming itself, closes.
_BACKEND_SERVER = '''\
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
