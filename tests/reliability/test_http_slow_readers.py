"""Clients that ask for the results and never read them cannot hold the agent's memory:
/api/v1/results is paged, and a response not taken within SEND_SECONDS is dropped with its
connection. Measured on a real `svcprobe run` process (its RSS from /proc), and on the
agent's HTTP app with a body larger than the kernel's socket buffers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent import server
from tests.support.kubeapi import service

pytestmark = pytest.mark.reliability

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SVCPROBE_")}
# Fewer stuck clients than the server's connection bound, so /healthz finds a slot whether or
# not the kernel has taken the stuck responses into its buffers (busy connections are never shed).
SERVICES, CLIENTS = 1000, server.MAX_CONNECTIONS - 4


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_slow_readers_of_the_results_do_not_hold_memory(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    # ClusterIPs in the benchmark range are never contacted: TCP probes are off, and DNS goes
    # to a closed loopback port (every lookup refused at once, so every check has a result).
    items = [service(f"ns{i % 10}", f"svc{i}", cluster_ip=f"198.18.{i // 250}.{i % 250 + 1}") for i in range(SERVICES)]
    inventory.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**CLEAN_ENV, "SVCPROBE_TCP_ENABLED": "false", "SVCPROBE_DNS_QUERY_BUDGET_PER_SECOND": "100000",
           "SVCPROBE_DNS_QUERY_BUDGET_BURST": "100000", "SVCPROBE_SCHEDULER_INTERVAL_SECONDS": "3600",
           "SVCPROBE_SCHEDULER_SPREAD": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "run", "--inventory", str(inventory), "--nameserver", "127.0.0.1:9",
        "--listen", f"127.0.0.1:{port}", "--log-level", "warning", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                first = await asyncio.to_thread(get, f"{base}/api/v1/results?limit=1")
                if first["sweep"] is not None:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no sweep within 60 s"
            await asyncio.sleep(0.5)
        page = first["page"]
        assert isinstance(page, dict)
        total = page["total"]
        assert total >= SERVICES * 8  # 4 forms x A/AAAA per Service, at least

        # Paging walks every result exactly once.
        seen, offset = 0, 0
        while offset is not None:
            body = await asyncio.to_thread(get, f"{base}/api/v1/results?limit={server.RESULTS_LIMIT_MAX}"
                                                f"&offset={offset}")
            seen += len(body["results"])  # type: ignore[arg-type]
            offset = body["page"]["next_offset"]  # type: ignore[index]
        assert seen == total

        before = rss_mib(proc.pid)
        for _ in range(CLIENTS):  # ask for the largest page and never read a byte
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.connect(("127.0.0.1", port))
            c.sendall(f"GET /api/v1/results?limit={server.RESULTS_LIMIT_MAX} HTTP/1.1\r\n"
                      f"Host: x\r\n\r\n".encode())
            clients.append(c)
        await asyncio.sleep(3)
        held = rss_mib(proc.pid)
        health = await asyncio.to_thread(get, f"{base}/healthz")  # the agent still answers
        await asyncio.sleep(server.SEND_SECONDS + 3)
        after = rss_mib(proc.pid)
        print(f"\n[slow readers] {total} results; RSS {before:.1f} MiB -> {held:.1f} MiB with {CLIENTS} stuck "
              f"readers -> {after:.1f} MiB after {server.SEND_SECONDS:g}s")
        assert health["status"] == "ok"
        assert held - before < 64
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]


async def test_a_response_not_taken_in_time_is_dropped_with_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp import web

    monkeypatch.setattr(server, "SEND_SECONDS", 1.0)
    body = b"x" * (64 * 2**20)  # far more than loopback socket buffers take
    outcome: list[str] = []

    async def big(request: web.Request) -> web.StreamResponse:
        try:
            return await server._send(request, body, "application/octet-stream")
        except web.HTTPRequestTimeout:
            outcome.append("dropped")
            raise

    app = web.Application()
    app.router.add_get("/big", big)
    http_runner = server.make_runner(app)
    await http_runner.setup()
    site = server.BoundedTCPSite(http_runner, "127.0.0.1", 0)
    await site.start()
    port = http_runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3)  # read nothing
        assert outcome == ["dropped"]
        got = 0
        try:
            while chunk := await asyncio.wait_for(reader.read(2**20), 5):
                got += len(chunk)
        except (ConnectionError, TimeoutError):
            pass
        assert got < len(body)  # the connection ended before the body did
        writer.close()
    finally:
        await http_runner.cleanup()
