"""Loopback TCP listeners for the TCP benchmarks, as a child process.

    python -m bench.listeners --addresses 127.61.0.1,127.61.0.2 --ports 4 [--max-seconds 600]
        [--tcp-info FILE]

Binds ``--ports`` listening sockets (free ports) on each loopback address, prints one JSON line
``{"listeners": [[address, port], ...]}`` on stdout, then accepts and closes connections as fast
as it can until its standard input closes or ``--max-seconds`` pass (it always stops by
itself). A connect completes in the kernel (the handshake) before any accept; accepting only
keeps the accept queues from filling.

With ``--tcp-info FILE`` it also records, for every accepted connection, the kernel's own
round-trip time of the handshake as this side measured it (``TCP_INFO.tcpi_rtt``, the SYN-ACK
to ACK time, in microseconds) and writes them to FILE (one number a line) when it stops: the
ground truth that bench/accuracy.py holds svcprobe's TCP connect times against.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import time

from bench.common import loopback

_TCPI_RTT_OFFSET = 68  # struct tcp_info: 8 bytes of u8 fields, then u32s; tcpi_rtt is the 16th


def tcpi_rtt_us(sock: socket.socket) -> int | None:
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < _TCPI_RTT_OFFSET + 4:
        return None
    return struct.unpack_from("I", info, _TCPI_RTT_OFFSET)[0]


def _listen(address: str, port: int, backlog: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(backlog)
    except OSError:
        s.close()
        raise
    return s


def _same_port(addresses: list[str], backlog: int) -> list[socket.socket]:
    """One listening socket per address, all on one port number free on every address."""
    for _ in range(100):
        first = _listen(addresses[0], 0, backlog)
        port = first.getsockname()[1]
        got = [first]
        try:
            for a in addresses[1:]:
                got.append(_listen(a, port, backlog))
            return got
        except OSError:
            for s in got:
                s.close()
    raise RuntimeError("no port number free on every address")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--addresses", required=True, help="comma-separated loopback addresses")
    p.add_argument("--ports", type=int, default=4, help="listening ports per address")
    p.add_argument("--backlog", type=int, default=4096)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--tcp-info", default="", help="record tcpi_rtt of accepted connections to this file")
    p.add_argument("--same-ports", action="store_true", help="the same port numbers on every address")
    args = p.parse_args(argv)

    addresses = [loopback(a.strip()) for a in args.addresses.split(",")]
    if args.same_ports:
        socks = []
        for _ in range(args.ports):
            socks += _same_port(addresses, args.backlog)
    else:
        socks = [_listen(a, 0, args.backlog) for a in addresses for _ in range(args.ports)]
    sel = selectors.DefaultSelector()
    listeners: list[tuple[str, int]] = []
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        listeners.append(s.getsockname()[:2])
    sel.register(sys.stdin, selectors.EVENT_READ, data="stdin")
    print(json.dumps({"listeners": listeners, "pid": os.getpid()}), flush=True)

    rtts: list[int] = []
    record = bool(args.tcp_info)
    accepted = 0
    deadline = time.monotonic() + args.max_seconds
    running = True
    while running and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.data == "stdin":
                if not sys.stdin.buffer.read1(4096):
                    running = False
                continue
            s = key.fileobj
            for _ in range(256):
                try:
                    conn, _addr = s.accept()  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                accepted += 1
                if record:
                    rtt = tcpi_rtt_us(conn)
                    if rtt is not None:
                        rtts.append(rtt)
                conn.close()
    for s in socks:
        s.close()
    if record:
        with open(args.tcp_info, "w") as f:
            f.write("".join(f"{r}\n" for r in rtts))
    print(json.dumps({"accepted": accepted}), flush=True)
    return 0


class Listeners:
    """Runs this module as a child (optionally pinned) and stops it."""

    def __init__(self, addresses: list[str], ports: int, *, cpu: int | None = None, max_seconds: float = 600,
                 tcp_info: str = "", same_ports: bool = False) -> None:
        self.addresses, self.ports, self.cpu, self.same_ports = addresses, ports, cpu, same_ports
        self.max_seconds, self.tcp_info = max_seconds, tcp_info
        self.proc = None
        self.endpoints: list[tuple[str, int]] = []
        self.pid = 0

    def start(self) -> Listeners:
        import subprocess

        from bench.common import REPO, taskset

        cmd = [*taskset(self.cpu), sys.executable, "-m", "bench.listeners", "--addresses", ",".join(self.addresses),
               "--ports", str(self.ports), "--max-seconds", str(self.max_seconds)]
        if self.tcp_info:
            cmd += ["--tcp-info", self.tcp_info]
        if self.same_ports:
            cmd.append("--same-ports")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("listeners did not start")
        info = json.loads(line)
        self.endpoints = [tuple(e) for e in info["listeners"]]
        self.pid = info["pid"]
        return self

    def stop(self) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        accepted = 0
        try:
            proc.stdin.close()
            out = proc.stdout.read()
            proc.wait(30)
            for line in out.splitlines():
                accepted = json.loads(line).get("accepted", accepted)
        except Exception:
            proc.kill()
            proc.wait()
        return accepted

    def __enter__(self) -> Listeners:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
