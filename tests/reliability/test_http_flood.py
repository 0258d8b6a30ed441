"""The agent's own HTTP server flooded: idle and half-sent connections, request storms and
/debug/probe storms. Connections stay bounded (agent/server.py MAX_CONNECTIONS, oldest
evicted), idle and slow-header connections are closed, fresh clients (Prometheus, kubelet)
still get answers, sweeps keep completing and memory stays bounded."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from pathlib import Path

import aiohttp
import pytest

from agent import server as server_mod
from agent.demo.dnsserver import DnsServer, records_from_inventory
from agent.inventory import manifests
from tests.reliability.common import ZONE, Svc, agent_settings, manifest, run_agent, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]
FLOOD = 400  # idle connections opened at once: well above the cap, well below the fd limit


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def _setup(tmp_path: Path) -> tuple[DnsServer, Path]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(manifest([Svc("app", f"svc{i}", f"127.0.0.{10 + i}", 80) for i in range(3)]))
    server = DnsServer(records_from_inventory(manifests.load_file(str(inventory)).inventory, ZONE), zone=ZONE)
    await server.start("127.0.0.1", 0)
    return server, inventory


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 503")


async def test_idle_connection_flood_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 256:
        pytest.skip(f"fd limit {soft} too low for this test")
    monkeypatch.setattr(server_mod, "KEEPALIVE_SECONDS", 2.0)
    dns_server, inventory = await _setup(tmp_path)
    socks: list[socket.socket] = []
    try:
        async with run_agent(agent_settings(f"{dns_server.address[0]}:{dns_server.address[1]}", inventory,
                                            **{"tcp.enabled": False})) as r:
            host, port = r.base.removeprefix("http://").rsplit(":", 1)
            loop = asyncio.get_running_loop()
            sweeps = r.agent.store.sweeps
            for i in range(FLOOD):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, (host, int(port)))
                if i % 2:
                    s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
                socks.append(s)
            await asyncio.sleep(0.3)
            open_now = [s for s in socks if not _closed_by_server(s)]
            # The server holds at most its cap of connections; the rest were closed.
            assert len(open_now) <= server_mod.MAX_CONNECTIONS, len(open_now)
            # A fresh client still gets answers while the flood holds its connections.
            for path in ("/healthz", "/metrics", "/api/v1/results"):
                status, _ = await r.get(path)
                assert status == 200, path
            # Idle and slow-header connections are closed after KEEPALIVE_SECONDS.
            await wait_for(lambda: all(_closed_by_server(s) for s in open_now),
                           "the server to close idle and half-sent connections", 20, alive=r.alive)
            await r.sweeps(2)
            assert r.agent.store.sweeps >= sweeps + 2
            # ... and the metrics say what happened.
            shed = {l["reason"]: v for l, v in (await r.metrics())["svcprobe_http_connections_shed_total"]}
            assert shed["evicted"] >= FLOOD - server_mod.MAX_CONNECTIONS, shed
    finally:
        for s in socks:
            s.close()
        await dns_server.stop()


async def test_request_storm_and_debug_probe_storm(tmp_path: Path) -> None:
    dns_server, inventory = await _setup(tmp_path)
    try:
        async with run_agent(agent_settings(f"{dns_server.address[0]}:{dns_server.address[1]}", inventory,
                                            **{"tcp.enabled": False})) as r:
            # Warm up, then measure memory across a bounded storm of 3000 requests from 48
            # keep-alive connections (under the cap: every request must be answered).
            await r.get("/api/v1/results")
            fds0 = len(os.listdir("/proc/self/fd"))
            rss0 = rss_kib()
            statuses: dict[int | str, int] = {}
            paths = ["/metrics", "/api/v1/results", "/api/v1/results?failing=true&namespace=app",
                     "/api/v1/results?check=nope", "/healthz", "/nope", "/debug/probe?service=app/missing"]

            async def storm(total: int, connector: aiohttp.TCPConnector) -> None:
                async with aiohttp.ClientSession(connector=connector) as http:
                    async def one(i: int) -> None:
                        try:
                            async with http.get(r.base + paths[i % len(paths)]) as resp:
                                await resp.read()
                                key: int | str = resp.status
                        except aiohttp.ClientError:
                            key = "turned away"
                        statuses[key] = statuses.get(key, 0) + 1
                    await asyncio.gather(*(one(i) for i in range(total)))

            await storm(3000, aiohttp.TCPConnector(limit=48))
            assert set(statuses) <= {200, 400, 404}, statuses
            assert len(os.listdir("/proc/self/fd")) <= fds0 + 16
            assert rss_kib() - rss0 < 64 * 1024, (rss0, rss_kib())
            # 1000 requests on fresh connections, 250 at once (over the cap): each is answered
            # or turned away (503, or closed when evicted); never a server error.
            statuses.clear()
            await storm(1000, aiohttp.TCPConnector(limit=250, force_close=True))
            assert set(statuses) <= {200, 400, 404, 503, "turned away"}, statuses
            assert statuses.get(200, 0) > 0
            if 503 in statuses:
                shed = {l["reason"]: v for l, v in (await r.metrics())["svcprobe_http_connections_shed_total"]}
                assert shed["busy"] >= statuses[503], (shed, statuses)
            assert len(os.listdir("/proc/self/fd")) <= fds0 + 16
            # /debug/probe storm: one at a time, at most once a second; the rest get 429.
            queries0 = len(dns_server.queries)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:
                async def probe() -> int:
                    async with http.get(r.base + "/debug/probe?service=app/svc0") as resp:
                        await resp.read()
                        if resp.status == 429:
                            assert int(resp.headers["Retry-After"]) >= 1
                        return resp.status
                codes = await asyncio.gather(*(probe() for _ in range(300)))
            elapsed = loop.time() - t0
            assert set(codes) <= {200, 429} and 200 in codes and 429 in codes
            assert codes.count(200) <= int(elapsed / 1.0) + 1, (codes.count(200), elapsed)
            # Only names of the probed Service were asked (plus the sweeps' own queries).
            asked = {q for q, _, _ in dns_server.queries[queries0:]}
            assert all(".app.svc.cluster.local." in q or q.startswith("svc") or q.endswith(".in-addr.arpa.")
                       for q in asked), asked
            await r.sweeps(2)
    finally:
        await dns_server.stop()
