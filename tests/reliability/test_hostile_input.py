"""Hostile and broken input (issue: every input bounded, every failure reported).

Each test feeds what a broken API server, proxy or static file can send and checks that the
agent reports it (a counted restart, an error naming the problem, exit code 2) and keeps
working: discovery never dies, a lookup always ends, a bad rewrite keeps the last good
inventory. Traffic stays on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.demo.dnsserver import DnsServer, Records, add
from agent.discovery.kube import KubeSource
from agent.discovery.static import StaticSource
from agent.health import Health
from agent.probes.dns import DnsEngine
from tests.support.kubeapi import FakeKubeAPI, RecordingSleep, endpoint_slice, service
from tests.support.listeners import full_backlog

pytestmark = pytest.mark.reliability

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SVCPROBE_")}
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
HUGE_NUMBER = b"9" * 5000  # valid JSON; Python refuses integers over 4,300 digits


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


async def start_source(server: str, tmp_path: Path, health: Health,
                       **kwargs: Any) -> tuple[KubeSource, asyncio.Task[None]]:
    kwargs.setdefault("page_size", 2)
    src = KubeSource(health, kubeconfig=str(kubeconfig(tmp_path / "kubeconfig", server)),
                     publish_interval=0.05, backoff_initial=0.05, rng=random.Random(3), sleep=RecordingSleep(),
                     **kwargs)
    await src.connect()
    return src, asyncio.create_task(src.run(), name="test-discovery")


async def eventually(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def stop(task: asyncio.Task[None]) -> None:
    assert not task.done(), f"discovery ended: {task}"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(token="t") as server:
        server.put("services", service("shop", "web", cluster_ip="198.18.0.1"))
        server.put("endpointslices", endpoint_slice("shop", "web-1", "web", ["198.18.1.1"]))
        yield server


@pytest.mark.parametrize("line", [
    DEEP_JSON,
    b'{"type":"ADDED","object":{"metadata":{"name":"x","namespace":"shop","generation":' + HUGE_NUMBER + b"}}}",
], ids=["nested-100000-deep", "5000-digit-number"])
async def test_an_unreadable_watch_event_is_reported_and_watching_goes_on(api: FakeKubeAPI, tmp_path: Path,
                                                                        line: bytes) -> None:
    health = Health()
    src, task = await start_source(api.url, tmp_path, health)
    assert await src.wait_synced(15), src.last_error
    await eventually(lambda: api.watchers() == 2, "both watches")
    api.send_raw("services", line)
    await eventually(lambda: health.watch_restarts.get(("services", "invalid"), 0) >= 1, "an invalid restart")
    api.put("services", service("shop", "after", cluster_ip="198.18.0.2"))
    await eventually(lambda: ("shop", "after") in src.inventory.services, "the next event applied")
    await stop(task)


async def test_an_unreadable_list_is_retried_and_reported_until_it_is_fixed(api: FakeKubeAPI, tmp_path: Path) -> None:
    bad = service("shop", "bad", cluster_ip="198.18.0.3")
    bad["metadata"]["generation"] = 12345
    api.put("services", bad)
    stored = api._objects["services"][("shop", "bad")]  # the bytes it serves: make the number huge
    stored.item = stored.item.replace(b'"generation":12345', b'"generation":' + HUGE_NUMBER)
    health = Health()
    src, task = await start_source(api.url, tmp_path, health)
    await eventually(lambda: health.watch_restarts.get(("services", "invalid"), 0) >= 2, "retried lists")
    assert not src.synced
    assert "services list: list response: Exceeds the limit" in src.last_error
    api.put("services", service("shop", "bad", cluster_ip="198.18.0.3"))  # fixed
    assert await src.wait_synced(15), src.last_error
    assert set(src.inventory.services) == {("shop", "web"), ("shop", "bad")}
    await stop(task)


@pytest.fixture
async def looping_api() -> AsyncIterator[tuple[str, list[str], dict[str, str]]]:
    """A stand-in API server whose list never ends: the continue token comes back (mode
    'same') or is new on every page ('new'); endpointslices list normally (empty)."""
    seen: list[str] = []
    mode = {"services": "same"}

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        if request.query.get("watch"):
            await asyncio.sleep(30)
        meta: dict[str, Any] = {"resourceVersion": "7"}
        if request.path == "/api/v1/services":
            meta["continue"] = "same" if mode["services"] == "same" else f"page-{len(seen)}"
        return web.json_response({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": []})

    app = web.Application()
    app.router.add_get("/api/v1/services", handle)
    app.router.add_get("/apis/discovery.k8s.io/v1/endpointslices", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)  # do not wait for the hanging watches
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", seen, mode
    finally:
        await runner.cleanup()


async def test_a_continue_token_that_comes_back_stops_the_list(
        looping_api: tuple[str, list[str], dict[str, str]], tmp_path: Path) -> None:
    url, seen, _ = looping_api
    health = Health()
    src, task = await start_source(url, tmp_path, health)
    await eventually(lambda: health.watch_restarts.get(("services", "invalid"), 0) >= 3, "three abandoned lists")
    await stop(task)
    pages = [p for p in seen if p.startswith("/api/v1/services")]
    attempts = health.watch_restarts[("services", "invalid")]
    assert len(pages) <= 2 * (attempts + 1)  # two pages per attempt: the second repeats the token
    assert "continue token repeated after 2 pages" in src.last_error


async def test_a_list_that_never_ends_stops_at_max_list_pages(
        looping_api: tuple[str, list[str], dict[str, str]], tmp_path: Path) -> None:
    url, seen, mode = looping_api
    mode["services"] = "new"  # a fresh token on every page: only the page cap ends it
    health = Health()
    src, task = await start_source(url, tmp_path, health, max_list_pages=25)
    await eventually(lambda: health.watch_restarts.get(("services", "invalid"), 0) >= 2, "abandoned lists")
    await stop(task)
    assert "list did not end after 25 pages" in src.last_error
    pages = [p for p in seen if p.startswith("/api/v1/services")]
    assert len(pages) <= 25 * (health.watch_restarts[("services", "invalid")] + 1)


async def test_a_watch_event_longer_than_the_cap_ends_the_watch(api: FakeKubeAPI, tmp_path: Path) -> None:
    health = Health()
    src, task = await start_source(api.url, tmp_path, health, max_event_bytes=65536)
    assert await src.wait_synced(15), src.last_error
    await eventually(lambda: api.watchers() == 2, "both watches")
    big = service("shop", "big", cluster_ip="198.18.0.4", annotations={"note": "x" * 200_000})
    api.put("services", big)
    await eventually(lambda: health.watch_restarts.get(("services", "invalid"), 0) >= 1, "an invalid restart")
    assert "longer than 65536 bytes" in src.last_error
    assert ("shop", "big") not in src.inventory.services
    await stop(task)


# ---------------------------------------------------------------------- static files

BAD_FILES = {
    "nested": ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    "huge-number": ('{"apiVersion": "v1", "kind": "List", "items": [{"kind": "Service", "metadata": {"generation": '
                    + "9" * 5000 + "}}]}", "unusable value: Exceeds the limit"),
    # 717 bytes that expand to 9^9 strings: refused before anything is expanded
    "alias-bomb": ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                   + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                             for p, c in zip("abcdefgh", "bcdefghi", strict=True)), "YAML aliases"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
async def test_check_rejects_a_hostile_inventory_file_with_exit_2(tmp_path: Path, name: str) -> None:
    text, message = BAD_FILES[name]
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    prlimit = shutil.which("prlimit")
    # A real memory cap: what used to expand to gigabytes must fail on the message, not on memory.
    cap = [prlimit, f"--as={2 * 2**30}", "--"] if prlimit else []
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *cap, sys.executable, "-m", "agent", "check", "--inventory", str(path), "--nameserver", "127.0.0.1:9",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=CLEAN_ENV)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    elapsed = time.monotonic() - t0
    print(f"\n[hostile file {name}] exit {proc.returncode} in {elapsed:.1f}s: {err.decode().strip()[:200]}")
    assert proc.returncode == 2, err.decode()
    assert message in err.decode()
    assert "Traceback" not in err.decode()


async def test_run_keeps_its_last_good_inventory_when_a_rewrite_is_hostile(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        service("shop", "web", cluster_ip="198.18.0.1")]}))
    health = Health()
    source = StaticSource(str(path), health, reload_seconds=0.05)
    assert source.load_initial().ok
    task = asyncio.create_task(source.run())
    for n, name in enumerate(sorted(BAD_FILES), 1):
        path.write_text(BAD_FILES[name][0])
        await eventually(lambda n=n: health.reloads["error"] == n, f"the {name} rewrite rejected")
        assert BAD_FILES[name][1] in health.last_inventory_error
        assert set(source.inventory.services) == {("shop", "web")}
    await stop(task)


# ---------------------------------------------------------------------- names that cannot be asked

async def test_a_lookup_with_names_too_long_to_ask_always_ends() -> None:
    zone = "cluster.local."
    records: Records = {}
    add(records, "web.shop.svc.cluster.local.", "A", "198.18.0.1")
    server = DnsServer(records, zone=zone)
    address = await server.start("127.0.0.1", 0)
    engine = DnsEngine(timeout=0.5, attempts=1)
    try:
        long_domain = ".".join(["d" * 60] * 4)  # 243 characters: every candidate under it is too long
        candidates = [f"web.shop.svc.{long_domain}.", "web.shop.svc.cluster.local."]
        lookup = await asyncio.wait_for(engine.lookup(candidates, "A", [address]), 5)
        assert (lookup.status, lookup.records, lookup.queries) == ("answer", ("198.18.0.1",), 1)
        only_bad = await asyncio.wait_for(engine.lookup(candidates[:1], "A", [address]), 5)
        assert only_bad.status == "error" and "cannot be asked" in only_bad.detail
        assert only_bad.queries == 0
        srv = await asyncio.wait_for(engine.lookup([f"_{'p' * 64}._tcp.web.shop.svc.cluster.local."], "SRV",
                                                   [address]), 5)
        assert srv.status == "error" and "LabelTooLong" in srv.detail
    finally:
        await engine.close()
        await server.stop()


class _Rewriter(asyncio.DatagramProtocol):
    """A DNS server that answers every A query with the right address under another name,
    as a CoreDNS `rewrite` without `answer name` does."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        import dns.message
        import dns.rrset

        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.answer.append(dns.rrset.from_text("rewritten.shop.svc.cluster.local.", 5, "IN", "A", "198.18.0.1"))
        self.transport.sendto(reply.to_wire(), addr)  # type: ignore[attr-defined]


async def test_records_owned_by_another_name_are_not_an_answer() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Rewriter, local_addr=("127.0.0.1", 0))
    address = transport.get_extra_info("sockname")[:2]
    engine = DnsEngine(timeout=0.5, attempts=1)
    try:
        lookup = await asyncio.wait_for(engine.lookup(["web.shop.svc.cluster.local."], "A", [address]), 5)
        # dnspython's resolver raises NoAnswer here, and applications get no address.
        assert (lookup.status, lookup.records) == ("nodata", ())
    finally:
        await engine.close()
        transport.close()


# ---------------------------------------------------------------------- file descriptors

def hanging_endpoints_inventory(path: Path, n: int) -> tuple[list[Any], int]:
    """A Service with n endpoints whose connects hang: listeners (127.89.x.y) that never
    accept, with a full backlog, so the kernel drops further SYNs."""
    listeners: list[Any] = []
    addrs = []
    port = 0
    for i in range(n):
        held = full_backlog(f"127.89.{i // 250}.{i % 250 + 1}", port, fill=2)
        port = held[0].getsockname()[1]  # the same port on every address
        addrs.append(held[0].getsockname()[0])
        listeners += held
    svc = service("shop", "hang", cluster_ip=None, headless=True, ports=(("http", port),))
    eps = endpoint_slice("shop", "hang-1", "hang", addrs, port=port)
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, eps]}))
    return listeners, port


async def run_check(*args: str, nofile: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "prlimit", f"--nofile={nofile}", "--", sys.executable, "-m", "agent", "check", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**CLEAN_ENV, **env})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
async def test_a_hard_fd_limit_below_what_the_settings_need_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text('{"apiVersion": "v1", "kind": "List", "items": []}')
    code, _, err = await run_check("--inventory", str(path), "--nameserver", "127.0.0.1:9", nofile="64:64", env={})
    assert code == 2, err
    assert "the open-files limit is 64 (hard), but these settings need about" in err


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
async def test_many_hanging_endpoints_under_a_low_soft_fd_limit_lose_no_check(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    listeners, _ = hanging_endpoints_inventory(path, 400)
    try:
        # The soft limit (256) is below what 400 connects in flight need; the hard one is not.
        env = {"SVCPROBE_SCHEDULER_CONCURRENCY": "400", "SVCPROBE_TCP_TIMEOUT_SECONDS": "1",
               "SVCPROBE_TCP_DENY_CIDRS": "",  # the hanging listeners are on loopback
               "SVCPROBE_DNS_TIMEOUT_SECONDS": "0.2", "SVCPROBE_DNS_FORMS": "fqdn"}
        code, out, err = await run_check("--inventory", str(path), "--nameserver", "127.0.0.1:9", "--output", "json",
                                         nofile="256:4096", env=env)
    finally:
        for s in listeners:
            s.close()
    assert code == 1, err  # failing (timeouts), not crashed
    results = json.loads(out)["results"]
    endpoint_checks = [r for r in results if r["check"] == "tcp" and r["path"] == "endpoint"]
    print(f"\n[fd limit 256:4096] {len(results)} results, endpoint results "
          f"{sorted({r['result'] for r in endpoint_checks})}, stderr {len(err)} bytes")
    assert len(endpoint_checks) == 400  # every planned check has a result
    assert {r["result"] for r in endpoint_checks} <= {"timeout", "ok"}
    assert "Traceback" not in err and "failed unexpectedly" not in err


async def test_big_annotations_are_not_kept(tmp_path: Path) -> None:
    import gc
    import tracemalloc

    n, size = 200, 250 * 1024  # 50 MB of annotations the agent does not read
    async with FakeKubeAPI(token="t") as server:
        server.put_many("services", [service("shop", f"s{i}", cluster_ip=f"198.18.{i // 250}.{i % 250 + 1}",
                                             labels={"tier": "web", "team": f"t{i}"},
                                             annotations={"note": "x" * size, "svcprobe.io/skip-tcp": "true"})
                                     for i in range(n)])
        health = Health()
        tracemalloc.start()
        try:
            src, task = await start_source(server.url, tmp_path, health, label_keys=frozenset({"tier"}))
            assert await src.wait_synced(60), src.last_error
            await stop(task)
            gc.collect()
            kept = sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(True, "*/agent/*")]).statistics("filename"))
        finally:
            tracemalloc.stop()
    svc = src.inventory.services[("shop", "s0")]
    assert dict(svc.annotations) == {"svcprobe.io/skip-tcp": "true"}
    assert dict(svc.labels) == {"tier": "web"}
    print(f"\n[annotations] {n} Services x {size // 1024} KiB: {kept / 2**20:.1f} MiB held by the agent's code")
    assert kept < 10 * 2**20


# ---------------------------------------------------------------------- through `svcprobe check`

async def check_json(path: Path, env: dict[str, str], *, timeout: float = 120) -> tuple[int, dict[str, Any], str]:
    cap = [p, f"--as={2 * 2**30}", "--"] if (p := shutil.which("prlimit")) else []
    proc = await asyncio.create_subprocess_exec(
        *cap, sys.executable, "-m", "agent", "check", "--inventory", str(path), "--nameserver", "127.0.0.1:9",
        "--output", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**CLEAN_ENV, "SVCPROBE_DNS_TIMEOUT_SECONDS": "0.2", **env})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else {}, err.decode()


async def test_a_port_name_the_api_would_reject_still_gives_every_check_a_result(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    svc = service("shop", "web", cluster_ip="198.18.0.1", ports=(("p" * 64, 80),))
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc]}))
    code, report, err = await check_json(path, {"SVCPROBE_TCP_ENABLED": "false"})
    assert code == 1, err  # failing (nothing answers DNS here), not "ok" with a check missing
    results = report["results"]
    assert len(results) == 10  # 4 forms x A/AAAA + SRV + PTR: none dropped
    srv = next(r for r in results if r["qtype"] == "SRV")
    assert srv["result"] == "error" and "cannot be asked" in srv["detail"]


async def test_forbidden_addresses_are_never_connected_to(tmp_path: Path) -> None:
    import socket

    listener = socket.socket(socket.AF_INET6)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # takes ::ffff:127.0.0.1 too
    listener.bind(("::", 0))
    listener.listen(64)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    path = tmp_path / "inventory.yaml"
    svc = service("shop", "web", cluster_ip="127.0.0.1", ports=(("http", port),))
    v4 = endpoint_slice("shop", "web-4", "web", ["127.0.0.1", "0.0.0.0", "169.254.169.254", "224.0.0.1"], port=port)
    v6 = endpoint_slice("shop", "web-6", "web", ["::ffff:127.0.0.1", "::1"], port=port, address_type="IPv6")
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, v4, v6]}))
    try:
        code, report, err = await check_json(path, {"SVCPROBE_DNS_FORMS": "fqdn"})
        accepted = 0
        try:
            while listener.accept():
                accepted += 1
        except BlockingIOError:
            pass
    finally:
        listener.close()
    assert [r for r in report["results"] if r["check"] == "tcp"] == []
    assert accepted == 0, "the agent connected to a forbidden address"
    assert code == 1, err  # its DNS checks fail here (nothing answers): the policy only skips TCP


async def test_a_slice_at_the_api_limits_is_checked_within_bounds(tmp_path: Path) -> None:
    # 1,000 endpoints x 20 addresses x 100 ports (4,000,000 checks and 851 MiB before the limits),
    # on loopback addresses where nothing listens (refused at once).
    addrs = [f"127.{90 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(20_000)]
    eps = [{"addresses": addrs[i * 20:(i + 1) * 20], "conditions": {"ready": True}} for i in range(1000)]
    ports = [{"name": f"p{i}", "protocol": "TCP", "port": 20000 + i} for i in range(100)]
    svc = service("shop", "big", cluster_ip="198.18.0.1", ports=[(f"p{i}", 20000 + i) for i in range(100)])
    svc["spec"]["clusterIP"] = svc["spec"]["clusterIPs"][0] = "127.0.0.2"
    slice_ = endpoint_slice("shop", "big-1", "big", [])
    slice_.update(endpoints=eps, ports=ports)
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, slice_]}))
    t0 = time.monotonic()
    code, report, err = await check_json(path, {"SVCPROBE_TCP_DENY_CIDRS": "", "SVCPROBE_DNS_FORMS": "fqdn",
                                               "SVCPROBE_TCP_TIMEOUT_SECONDS": "0.5"})
    print(f"\n[API limits] exit {code}, {len(report.get('results', []))} results in {time.monotonic() - t0:.1f}s")
    assert code == 1, err
    results = report["results"]
    assert len(results) == 500  # limits.checks_per_service
    endpoints = [r for r in results if r.get("path") == "endpoint" and r["check"] == "tcp"]
    assert len({r["address"] for r in endpoints}) * 32 >= len(endpoints)  # at most 32 ports each
    firsts = {addrs[i * 20] for i in range(1000)}
    assert {r["address"] for r in endpoints} <= firsts  # an endpoint's first address only


async def test_list_pages_too_large_are_asked_for_again_in_smaller_pages(tmp_path: Path) -> None:
    async with FakeKubeAPI(token="t") as server:
        server.put_many("services", [service("shop", f"s{i}", cluster_ip=f"198.18.0.{i + 1}",
                                             annotations={"note": "x" * 100_000}) for i in range(20)])
        health = Health()
        # Pages are capped at 8 x max_event_bytes = 512 KiB; 20 objects of 100 KB do not fit.
        src, task = await start_source(server.url, tmp_path, health, max_event_bytes=65536, page_size=20)
        assert await src.wait_synced(30), src.last_error
        assert len(src.inventory.services) == 20
        assert src.services.page_size <= 5
        list_pages = server.requests_for("services", "list")
        await stop(task)
    print(f"\n[page cap] {len(list_pages)} list requests, page size now {src.services.page_size}")


async def test_an_object_larger_than_the_page_cap_is_reported(tmp_path: Path) -> None:
    async with FakeKubeAPI(token="t") as server:
        server.put("services", service("shop", "huge", cluster_ip="198.18.0.1", annotations={"note": "x" * 600_000}))
        health = Health()
        src, task = await start_source(server.url, tmp_path, health, max_event_bytes=65536)
        await eventually(lambda: health.watch_restarts.get(("services", "invalid"), 0) >= 2, "invalid lists")
        assert not src.synced
        assert "one Service is larger than 524288 bytes" in src.last_error
        await stop(task)
