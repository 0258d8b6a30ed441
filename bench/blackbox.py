"""Prometheus blackbox_exporter (Debian package prometheus-blackbox-exporter) as a benchmark
engine, driven over HTTP the way Prometheus drives it: one ``GET /probe?module=M&target=T`` per
probe, on keep-alive connections to an exporter on 127.0.0.1 with the benchmark's own config.

- :class:`Exporter` runs ``prometheus-blackbox-exporter`` as a child process (its own
  configuration file, a free loopback port, ``GOMAXPROCS`` and a CPU to pin it to) and stops it.
- :func:`drive` sends a bounded number of probe requests (at most ``concurrency`` in flight,
  stopping at a deadline) over ``concurrency`` keep-alive connections with pre-built request
  bytes, and counts ``probe_success 1`` / ``0`` in the answers. It is a deliberately cheap
  driver (no HTTP library, no per-request objects beyond the bytes) so that the exporter, not
  the driver, is what is measured; the exporter's own CPU time is measured separately.
- :func:`dns_config` / :func:`tcp_config` write module configurations: one DNS module per
  queried name (blackbox's DNS prober takes the name from its module), each validating the
  answer against the expected address; one TCP ``tcp_connect`` module.

Traffic: the driver talks only to the exporter on 127.0.0.1; the exporter probes only the
loopback targets the benchmark names.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence

import yaml

from bench.common import free_port, log, loopback, taskset

BINARY = "prometheus-blackbox-exporter"


def find_exporter() -> str | None:
    return shutil.which(BINARY) or next(
        (p for p in (f"/usr/bin/{BINARY}", f"/usr/sbin/{BINARY}") if os.access(p, os.X_OK)), None)


def exporter_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).split()
        return text[2] if len(text) > 2 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dns_module_name(i: int) -> str:
    return f"d{i:05d}"


def dns_config(names: Sequence[str], expected: Sequence[str], timeout: float) -> str:
    """One DNS module per name: query type A over UDP, IPv4, NOERROR, and the one answer RR must
    be the expected address (so a wrong answer is a failed probe, as in the other engines)."""
    modules = {}
    for i, (name, addr) in enumerate(zip(names, expected, strict=True)):
        modules[dns_module_name(i)] = {
            "prober": "dns",
            "timeout": f"{timeout:g}s",
            "dns": {
                "transport_protocol": "udp",
                "preferred_ip_protocol": "ip4",
                "ip_protocol_fallback": False,
                "query_name": name.rstrip("."),
                "query_type": "A",
                "valid_rcodes": ["NOERROR"],
                "validate_answer_rrs": {
                    "fail_if_not_matches_regexp": ["\\t" + addr.replace(".", "\\.") + "$"],
                },
            },
        }
    return yaml.safe_dump({"modules": modules}, sort_keys=True)


def tcp_config(timeout: float) -> str:
    return yaml.safe_dump({"modules": {"tcp": {
        "prober": "tcp",
        "timeout": f"{timeout:g}s",
        "tcp": {"preferred_ip_protocol": "ip4", "ip_protocol_fallback": False},
    }}})


class Exporter:
    """blackbox_exporter on 127.0.0.1:<free port> with ``config`` (YAML text)."""

    def __init__(self, config: str, *, cpu: int | None = None, gomaxprocs: int = 1) -> None:
        path = find_exporter()
        if path is None:
            raise RuntimeError(f"{BINARY} not found; install it with scripts/deps.d/25-bench.sh")
        self.path = path
        self.config = config
        self.cpu = cpu
        self.gomaxprocs = gomaxprocs
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: str | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Exporter:
        self.dir = tempfile.mkdtemp(prefix="svcprobe-bench-blackbox-")
        cfg = os.path.join(self.dir, "blackbox.yml")
        with open(cfg, "w") as f:
            f.write(self.config)
        self.port = free_port(self.host)
        env = {**os.environ, "GOMAXPROCS": str(self.gomaxprocs)}
        cmd = [*taskset(self.cpu), self.path, f"--config.file={cfg}",
               f"--web.listen-address={self.host}:{self.port}", "--log.level=error"]
        self._log = open(os.path.join(self.dir, "exporter.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://{self.host}:{self.port}/-/healthy", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"blackbox_exporter did not come up: {tail}")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir or "", "exporter.log"), "rb") as f:
                return f.read()[-600:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request(self, module: str, target: str) -> bytes:
        return (f"GET /probe?module={module}&target={target} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nUser-Agent: svcprobe-bench\r\n\r\n").encode()


def target(address: str, port: int) -> str:
    loopback(address)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# --------------------------------------------------------------------------------------------
# the HTTP driver


class DriveResult:
    __slots__ = ("ok", "failed", "errors", "issued", "latencies")

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0  # probe_success 0, HTTP errors, timeouts
        self.errors: list[str] = []
        self.issued = 0


class _Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, driver: _Driver) -> None:
        self.d = driver
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.sent_at = 0.0
        self.busy = False
        self.dead = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.d.next_request(self)

    def send(self, req: bytes) -> None:
        assert self.transport is not None
        self.busy = True
        self.sent_at = time.monotonic()
        self.transport.write(req)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.busy:
            body = self._take_response()
            if body is None:
                return
            self.busy = False
            self.d.finished(self, body)

    def _take_response(self) -> bytes | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        status_ok = head.startswith(b"http/1.1 200") or head.startswith(b"http/1.0 200")
        start = end + 4
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif line.startswith(b"transfer-encoding:") and b"chunked" in line:
                chunked = True
        if chunked:
            body = bytearray()
            pos = start
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                if len(buf) < nl + 2 + size + 2:
                    return None
                body += buf[nl + 2:nl + 2 + size]
                pos = nl + 2 + size + 2
                if size == 0:
                    break
            del buf[:pos]
        else:
            if length < 0 or len(buf) < start + length:
                return None
            body = buf[start:start + length]
            del buf[:start + length]
        return bytes(body) if status_ok else b"HTTP-ERROR " + head[:60]

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        self.d.lost(self, exc)


class _Driver:
    def __init__(self, host: str, port: int, requests: Sequence[bytes], total: int, deadline: float,
                 timeout: float) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.total = total
        self.deadline = deadline
        self.timeout = timeout
        self.res = DriveResult()
        self.conns: list[_Conn] = []
        self.outstanding = 0
        self.done = asyncio.get_running_loop().create_future()

    def next_request(self, conn: _Conn) -> None:
        res = self.res
        if res.issued >= self.total or time.monotonic() >= self.deadline:
            self._maybe_done()
            return
        req = self.requests[res.issued % len(self.requests)]
        res.issued += 1
        self.outstanding += 1
        conn.send(req)

    def finished(self, conn: _Conn, body: bytes) -> None:
        self.outstanding -= 1
        if b"\nprobe_success 1" in body:
            self.res.ok += 1
        else:
            self.res.failed += 1
            if len(self.res.errors) < 3:
                if body.startswith(b"HTTP-ERROR"):
                    self.res.errors.append(body.decode(errors="replace"))
                else:
                    self.res.errors.append("probe_success 0")
        self.next_request(conn)

    def lost(self, conn: _Conn, exc: Exception | None) -> None:
        if conn.busy:
            conn.busy = False
            self.outstanding -= 1
            self.res.failed += 1
            if len(self.res.errors) < 3:
                self.res.errors.append(f"connection lost: {exc!r}")
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.outstanding == 0 and not self.done.done() and (
                self.res.issued >= self.total or time.monotonic() >= self.deadline):
            self.done.set_result(None)


async def drive(host: str, port: int, requests: Sequence[bytes], *, total: int, concurrency: int,
                deadline: float, timeout: float) -> DriveResult:
    """Send probe requests (cycling through `requests`) until `total` were sent or `deadline`
    (a time.monotonic() value) passed, at most `concurrency` in flight; wait for the answers
    (each bounded by `timeout`)."""
    loop = asyncio.get_running_loop()
    loopback(host)
    d = _Driver(host, port, requests, total, deadline, timeout)
    try:
        for _ in range(max(1, concurrency)):
            _, conn = await loop.create_connection(lambda: _Conn(d), host, port)
            conn.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            d.conns.append(conn)
        hard_stop = deadline + timeout + 5
        while not d.done.done():
            await asyncio.wait([d.done], timeout=0.05)
            now = time.monotonic()
            for conn in d.conns:  # an answer later than `timeout`: count it failed, drop the conn
                if conn.busy and now - conn.sent_at > timeout and conn.transport is not None:
                    conn.transport.abort()
            if now > hard_stop:
                d.res.errors.append(f"{d.outstanding} requests never answered")
                break
            if d.outstanding == 0 and (d.res.issued >= total or now >= deadline):
                break
            if all(c.dead for c in d.conns):
                break
    finally:
        for conn in d.conns:
            if conn.transport is not None:
                conn.transport.close()
    return d.res


def log_versions() -> None:
    path = find_exporter()
    log(f"blackbox_exporter: {path} {exporter_version(path) if path else ''}")
