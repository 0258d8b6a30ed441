"""A UDP DNS relay that adds a known delay, and whose own timestamps are the ground truth.

    python -m bench.relay --listen 127.65.0.1 --upstream 127.53.1.2:40000 --delay-ms 5 --truth FILE
        [--max-seconds 900]

This machine's kernel has no netem qdisc, so the delay is added in user space: the relay
receives a query, forwards it at once to the upstream server (knotd), and sends the reply back
to the client when ``delay`` has passed since the query *arrived*. For every query it answers
it records the truth: the time from the query's arrival to the moment the reply is handed to
the kernel. The arrival time is the kernel's receive timestamp of the datagram
(``SO_TIMESTAMPNS``), so time the query spent queued in the relay's socket while the relay was
busy is inside the truth, not lost from it; the send time is taken just before ``sendto``. Both
are CLOCK_REALTIME nanoseconds. What a client measures for the same query is the truth plus
the loopback transit both ways (microseconds) plus the client's own delays: the error that
bench/accuracy.py reports.

Query ids are rewritten towards the upstream (several clients may use the same id) and
restored in the reply. Prints ``{"listen": [address, port]}`` on stdout when ready; stops when
its standard input closes or after ``--max-seconds``; then writes the truths (nanoseconds, one
a line) to ``--truth`` and prints ``{"relayed": N, "late": M}`` (late: replies the relay sent
more than 1 ms after they were due, a sign that it was the bottleneck).

Loopback only: both the listening and the upstream address must be in 127.0.0.0/8 or ::1.
"""

from __future__ import annotations

import argparse
import ctypes
import heapq
import json
import os
import select
import socket
import struct
import sys
import time

from bench.common import loopback

_TS = struct.Struct("qq")
# Not in the socket module before Python 3.12 (Linux: 35 on x86 and arm; SCM_TIMESTAMPNS alike).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _tight_timers() -> None:
    """Ask for 1 ns timer slack so select() timeouts wake the relay on time (default 50 us)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return loopback(host.strip("[]")), int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True, help="loopback address to listen on (free port)")
    p.add_argument("--upstream", required=True, help="ADDRESS:PORT of the DNS server (loopback)")
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--truth", required=True, help="file for the per-query truths (ns)")
    p.add_argument("--max-seconds", type=float, default=900.0)
    args = p.parse_args(argv)
    _tight_timers()

    listen = loopback(args.listen)
    upstream = _hostport(args.upstream)
    fam = socket.AF_INET6 if ":" in listen else socket.AF_INET
    front = socket.socket(fam, socket.SOCK_DGRAM)
    front.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    front.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    front.bind((listen, 0))
    front.setblocking(False)
    back = socket.socket(socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET, socket.SOCK_DGRAM)
    back.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    back.connect(upstream)
    back.setblocking(False)
    print(json.dumps({"listen": list(front.getsockname()[:2]), "pid": os.getpid()}), flush=True)

    delay_ns = int(args.delay_ms * 1e6)
    pending: dict[int, tuple[bytes, object, int, float]] = {}  # relay id -> (client id, addr, t_rx_ns, mono)
    due: list[tuple[int, int, bytes, object, int]] = []  # (send at ns, seq, reply, addr, t_rx_ns)
    truths: list[int] = []
    late = 0
    seq = 0
    next_id = 0
    anc = socket.CMSG_SPACE(_TS.size)
    stdin = sys.stdin.fileno()
    deadline = time.monotonic() + args.max_seconds
    running = True
    while running and time.monotonic() < deadline:
        now = time.time_ns()
        while due and due[0][0] <= now:
            send_at, _, reply, addr, t_rx = heapq.heappop(due)
            t_tx = time.time_ns()
            try:
                front.sendto(reply, addr)
            except OSError:
                continue
            truths.append(t_tx - t_rx)
            if t_tx - send_at > 1_000_000:
                late += 1
            now = time.time_ns()
        timeout = 0.5 if not due else max(0.0, (due[0][0] - time.time_ns()) / 1e9)
        readable, _, _ = select.select([front, back, stdin], [], [], timeout)
        for r in readable:
            if r is front:
                for _ in range(64):
                    try:
                        data, ancdata, _flags, addr = front.recvmsg(4096, anc)
                    except (BlockingIOError, InterruptedError):
                        break
                    t_rx = time.time_ns()
                    for level, kind, cdata in ancdata:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= _TS.size:
                            sec, nsec = _TS.unpack_from(cdata)
                            t_rx = sec * 1_000_000_000 + nsec
                    if len(data) < 12:
                        continue
                    rid = next_id
                    next_id = (next_id + 1) & 0xFFFF
                    pending[rid] = (data[:2], addr, t_rx, time.monotonic())
                    try:
                        back.send(rid.to_bytes(2, "big") + data[2:])
                    except OSError:
                        pending.pop(rid, None)
            elif r is back:
                for _ in range(64):
                    try:
                        data = back.recv(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    entry = pending.pop((data[0] << 8) | data[1], None) if len(data) >= 12 else None
                    if entry is None:
                        continue
                    cid, addr, t_rx, _ = entry
                    seq += 1
                    heapq.heappush(due, (t_rx + delay_ns, seq, cid + data[2:], addr, t_rx))
            else:
                if not os.read(stdin, 4096):
                    running = False
        if len(pending) > 30000:  # lost upstream: forget entries older than 5 s
            cut = time.monotonic() - 5
            for k in [k for k, v in pending.items() if v[3] < cut]:
                del pending[k]
    front.close()
    back.close()
    with open(args.truth, "w") as f:
        f.write("".join(f"{t}\n" for t in truths))
    print(json.dumps({"relayed": len(truths), "late": late}), flush=True)
    return 0


class Relay:
    """Runs this module as a child (optionally pinned); ``truths()`` after ``stop()``."""

    def __init__(self, upstream: tuple[str, int], delay_ms: float, *, listen: str = "127.65.0.1",
                 cpu: int | None = None, max_seconds: float = 900) -> None:
        self.upstream, self.delay_ms, self.listen_addr, self.cpu = upstream, delay_ms, listen, cpu
        self.max_seconds = max_seconds
        self.proc = None
        self.address: tuple[str, int] = ("", 0)
        self.truth_file = ""
        self.stats: dict[str, int] = {}

    def start(self) -> Relay:
        import subprocess
        import tempfile

        from bench.common import REPO, taskset

        fd, self.truth_file = tempfile.mkstemp(prefix="svcprobe-bench-truth-")
        os.close(fd)
        host, port = self.upstream
        cmd = [*taskset(self.cpu), sys.executable, "-m", "bench.relay", "--listen", self.listen_addr,
               "--upstream", f"{host}:{port}", "--delay-ms", str(self.delay_ms), "--truth", self.truth_file,
               "--max-seconds", str(self.max_seconds)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("relay did not start")
        self.address = tuple(json.loads(line)["listen"])  # type: ignore[assignment]
        return self

    def stop(self) -> list[float]:
        """Stop it; the truths in seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return []
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(60)
        for line in out.splitlines():
            self.stats = json.loads(line)
        try:
            with open(self.truth_file) as f:
                return [int(x) / 1e9 for x in f.read().split()]
        finally:
            os.unlink(self.truth_file)


if __name__ == "__main__":
    sys.exit(main())
