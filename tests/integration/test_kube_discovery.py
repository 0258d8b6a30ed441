"""Kubernetes discovery (list + watch) against the fake API server on loopback.

Each test runs a real `KubeSource` over HTTP against `tests.support.kubeapi.FakeKubeAPI` (same
wire format as the API server) and asserts on the resulting `model.Inventory`, on `Health` and on
the requests the server saw. Waits are bounded polls; nothing asserts on elapsed time. Backoff
delays are observed through an injected sleep function, which records each delay and then
sleeps only briefly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.discovery.client import ConnectionSpec, DiscoveryConfigError
from agent.discovery.kube import KubeSource
from agent.discovery.listwatch import StreamError, iter_list_items
from agent.health import Health
from tests.support.kubeapi import FakeKubeAPI, RecordingSleep, endpoint_slice, service

TOKEN = "tok-3f9a1c77e2d84b55"


# ---------------------------------------------------------------------- helpers


Sleeps = RecordingSleep


async def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def write_kubeconfig(path: Path, server: str, *, token: str | None = TOKEN,
                     token_file: Path | None = None, ca_file: Path | None = None,
                     context: str = "fake") -> Path:
    user: dict[str, Any] = {}
    if token is not None:
        user["token"] = token
    if token_file is not None:
        user["tokenFile"] = str(token_file)
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fake-cluster", "cluster": cluster}],
        "users": [{"name": "fake-user", "user": user}],
        "contexts": [{"name": context, "context": {"cluster": "fake-cluster",
                                                   "user": "fake-user"}}],
        "current-context": context,
    }))
    return path


def populate(api: FakeKubeAPI, n: int = 5) -> None:
    """n Services shop/web0..n-1, each with one slice of two ready endpoints."""
    for i in range(n):
        api.put("services", service("shop", f"web{i}", cluster_ip=f"198.18.0.{i + 1}"))
        api.put("endpointslices", endpoint_slice(
            "shop", f"web{i}-x1", f"web{i}", [f"198.19.0.{i + 1}", f"198.19.1.{i + 1}"]))


def names(source: KubeSource) -> set[str]:
    return {f"{ns}/{name}" for ns, name in source.inventory.services}


def slice_names(source: KubeSource) -> set[str]:
    return {f"{ns}/{name}" for ns, name in source.inventory.slices}


class Harness:
    """A KubeSource on a kubeconfig for `url` (default: the fake's), run as a task."""

    def __init__(self, api: FakeKubeAPI | None, tmp_path: Path, *, url: str = "") -> None:
        self.api = api
        self.health = Health()
        self.sleeps = Sleeps()
        self.source: KubeSource | None = None
        self.task: asyncio.Task[None] | None = None
        assert api is not None or url
        self.kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url or api.url)  # type: ignore[union-attr]

    async def start(self, *, sync: bool = True, **kwargs: Any) -> KubeSource:
        kwargs.setdefault("kubeconfig", str(self.kubeconfig))
        kwargs.setdefault("page_size", 2)
        kwargs.setdefault("publish_interval", 0.05)
        kwargs.setdefault("backoff_initial", 0.2)
        kwargs.setdefault("rng", random.Random(7))
        self.source = KubeSource(self.health, sleep=self.sleeps, **kwargs)
        await self.source.connect()
        self.task = asyncio.create_task(self.source.run())
        if sync:
            assert await self.source.wait_synced(15), self.source.last_error
        return self.source

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    def restarts(self, resource: str, reason: str) -> int:
        return self.health.watch_restarts.get((resource, reason), 0)


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
async def harness(api: FakeKubeAPI, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(api, tmp_path)
    yield h
    await h.stop()


# ---------------------------------------------------------------------- initial sync


async def test_initial_paginated_sync_builds_the_full_inventory(harness: Harness) -> None:
    api = harness.api
    populate(api, 7)
    api.put("services", service("kube-system", "kube-dns", cluster_ip="198.18.0.10",
                                ports=(("dns", 53), ("dns-tcp", 53))))
    headless = service("db", "pg", headless=True, ports=(("pg", 5432),))
    api.put("services", headless)
    api.put("endpointslices", endpoint_slice("db", "pg-a", "pg", ["198.19.9.1", "198.19.9.2"],
                                             port=5432, port_name="pg"))
    api.put("endpointslices", endpoint_slice("db", "pg-b", "pg", ["198.19.9.3"], port=5432,
                                             port_name="pg", ready=False))
    list_rv = api.rv()
    src = await harness.start(page_size=3)

    inv = src.inventory
    assert names(src) == {f"shop/web{i}" for i in range(7)} | {"kube-system/kube-dns", "db/pg"}
    assert len(inv.slices) == 9
    web3 = inv.services[("shop", "web3")]
    assert web3.cluster_ips == (ipaddress.ip_address("198.18.0.4"),)
    assert [str(e.address) for e in inv.ready_endpoints(web3)] == ["198.19.0.4", "198.19.1.4"]
    pg = inv.services[("db", "pg")]
    assert pg.headless
    assert [str(e.address) for e in inv.ready_endpoints(pg)] == ["198.19.9.1", "198.19.9.2"]

    h = harness.health
    assert h.kube_synced and h.inventory_synced
    assert h.inventory_services == 9
    assert h.inventory_endpoints == 7 * 2 + 3 == inv.endpoint_count()
    assert h.relists == {"services": 1, "endpointslices": 1}
    assert h.skipped["malformed"] == 0
    assert src.changed.is_set()

    # Paginated: 9 Services in pages of 3, every page a consistent (resourceVersion-less) read.
    lists = api.requests_for("services", "list")
    assert [r.params.get("limit") for r in lists] == ["3", "3", "3"]
    assert "continue" not in lists[0].params and all("continue" in r.params for r in lists[1:])
    assert all("resourceVersion" not in r.params for r in lists)
    assert all(r.authorized for r in api.requests)

    # Then one watch per resource from the list's resourceVersion, with bookmarks and a
    # randomized server-side timeout in [T, 2T].
    await wait_for(lambda: api.watchers() == 2, "both watches")
    for resource in ("services", "endpointslices"):
        (watch,) = api.requests_for(resource, "watch")
        assert watch.params["resourceVersion"] == list_rv
        assert watch.params["allowWatchBookmarks"] == "true"
        assert 300 <= int(watch.params["timeoutSeconds"]) <= 600


async def test_nothing_is_published_before_both_resources_are_listed(harness: Harness) -> None:
    api = harness.api
    populate(api, 3)
    api.fail("list", "endpointslices", status=503, times=10**6)
    src = await harness.start(sync=False)
    await wait_for(lambda: harness.restarts("endpointslices", "http_error") >= 2, "list retries")
    await wait_for(lambda: harness.source is not None and harness.source.services.synced,
                   "Services listed")
    assert not harness.health.kube_synced and not harness.health.inventory_synced
    assert len(src.inventory) == 0 and not src.changed.is_set()
    assert not await src.wait_synced(0.05)
    assert "503" in src.last_error and "endpointslices list" in src.last_error
    api.clear_faults()
    assert await src.wait_synced(15)
    assert names(src) == {"shop/web0", "shop/web1", "shop/web2"}
    assert harness.health.kube_synced and harness.health.inventory_synced
    assert src.last_error == ""


# ---------------------------------------------------------------------- watch events


async def test_watch_events_are_applied(harness: Harness) -> None:
    api = harness.api
    populate(api, 3)
    src = await harness.start()
    src.changed.clear()

    api.put("services", service("shop", "cart", cluster_ip="198.18.2.1", ports=(("grpc", 9090),)))
    api.put("services", service("shop", "web1", cluster_ip="198.18.0.2", ports=(("https", 443),)))
    api.delete("services", "shop", "web2")
    api.put("endpointslices", endpoint_slice("shop", "cart-q1", "cart", ["198.19.2.1"],
                                             port=9090, port_name="grpc"))
    api.delete("endpointslices", "shop", "web0-x1")
    await wait_for(lambda: "shop/cart-q1" in slice_names(src) and "shop/web2" not in names(src)
                   and "shop/web0-x1" not in slice_names(src), "events applied")
    await wait_for(lambda: src.inventory.services[("shop", "web1")].ports[0].port == 443,
                   "modification")

    inv = src.inventory
    assert names(src) == {"shop/web0", "shop/web1", "shop/cart"}
    assert slice_names(src) == {"shop/web1-x1", "shop/web2-x1", "shop/cart-q1"}
    cart = inv.services[("shop", "cart")]
    assert [(str(e.address), e.ports[0].port) for e in inv.ready_endpoints(cart)] == [
        ("198.19.2.1", 9090)]
    assert inv.ready_endpoints(inv.services[("shop", "web0")]) == []
    assert src.changed.is_set()
    assert harness.health.inventory_services == 3
    assert harness.health.inventory_endpoints == 2 + 2 + 1
    assert harness.health.relists == {"services": 1, "endpointslices": 1}


async def test_a_burst_of_events_ends_in_the_exact_state(harness: Harness) -> None:
    api = harness.api
    src = await harness.start()
    for i in range(600):
        api.put("services", service("load", f"s{i}", cluster_ip=f"198.18.{4 + i // 250}.{i % 250 + 1}"))
    for i in range(0, 600, 3):
        api.delete("services", "load", f"s{i}")
    for i in range(1, 600, 3):
        api.put("services", service("load", f"s{i}", cluster_ip=f"198.18.9.{i % 250 + 1}"))
    expected = {f"load/s{i}" for i in range(600) if i % 3}
    await wait_for(lambda: names(src) == expected
                   and str(src.inventory.services[("load", "s598")].cluster_ips[0]) == "198.18.9.99",
                   "burst applied")
    assert harness.health.inventory_services == 400
    assert harness.health.relists == {"services": 1, "endpointslices": 1}


async def test_slices_before_their_service_and_after_it_is_gone(harness: Harness) -> None:
    """Services and EndpointSlices are not ordered relative to each other."""
    api = harness.api
    src = await harness.start()
    api.put("endpointslices", endpoint_slice("late", "api-1", "api", ["198.19.5.1"], port=8443))
    await wait_for(lambda: "late/api-1" in slice_names(src), "slice before its Service")
    assert ("late", "api") not in src.inventory.services

    api.put("services", service("late", "api", cluster_ip="198.18.5.1", ports=(("https", 443),)))
    await wait_for(lambda: ("late", "api") in src.inventory.services, "the Service")
    inv = src.inventory
    svc = inv.services[("late", "api")]
    assert [(str(e.address), e.ports[0].port) for e in inv.ready_endpoints(svc)] == [
        ("198.19.5.1", 8443)]

    api.delete("services", "late", "api")
    await wait_for(lambda: ("late", "api") not in src.inventory.services, "Service deleted")
    assert "late/api-1" in slice_names(src)  # its slice may outlive it for a while


# ---------------------------------------------------------------------- bookmarks and RVs


async def test_bookmark_advances_the_resource_version_without_touching_state(
        tmp_path: Path) -> None:
    async with FakeKubeAPI(token=TOKEN, expired_as="http") as api:
        h = Harness(api, tmp_path)
        try:
            populate(api, 2)
            src = await h.start()
            await wait_for(lambda: api.watchers() == 2, "watches")
            listed_rv = api.rv()
            # Services change, EndpointSlices do not: only a bookmark moves the slices' RV.
            api.put("services", service("shop", "extra", cluster_ip="198.18.3.3"))
            await wait_for(lambda: ("shop", "extra") in src.inventory.services, "service event")
            inv_before = src.inventory
            src.changed.clear()
            bookmark_rv = api.bookmark("endpointslices")
            assert bookmark_rv != listed_rv
            await wait_for(lambda: h.source is not None and h.source.slices.rv == bookmark_rv,
                           "bookmark seen")
            # History compacted up to now and streams closed: a watch from the listed RV would
            # now get 410; one from the bookmark's RV resumes.
            api.expire()
            await wait_for(lambda: len(api.requests_for("endpointslices", "watch")) >= 2
                           and api.requests_for("endpointslices", "watch")[-1].status == 200,
                           "slices re-watch")
            watches = api.requests_for("endpointslices", "watch")
            assert watches[0].params["resourceVersion"] == listed_rv
            assert watches[1].params["resourceVersion"] == bookmark_rv
            assert h.health.relists["endpointslices"] == 1
            assert h.restarts("endpointslices", "expired") == 0
            assert src.inventory is inv_before and not src.changed.is_set()
            # The Services watch resumes from its last event's RV, also without a relist.
            await wait_for(lambda: api.watchers("services") == 1, "services re-watch")
            assert h.health.relists["services"] == 1
        finally:
            await h.stop()


async def test_resource_versions_are_opaque_strings(tmp_path: Path) -> None:
    async with FakeKubeAPI(token=TOKEN, rv_prefix="etcd/3f:") as api:
        h = Harness(api, tmp_path)
        try:
            populate(api, 3)
            src = await h.start()
            api.put("services", service("shop", "n1", cluster_ip="198.18.3.1"))
            await wait_for(lambda: ("shop", "n1") in src.inventory.services, "event")
            last = api.rv()
            assert api.close_watches() == 2
            await wait_for(lambda: len(api.requests_for("services", "watch")) == 2, "re-watch")
            assert api.requests_for("services", "watch")[1].params["resourceVersion"] == last
            api.put("services", service("shop", "n2", cluster_ip="198.18.3.2"))
            await wait_for(lambda: ("shop", "n2") in src.inventory.services, "event after re-watch")
            assert h.health.relists == {"services": 1, "endpointslices": 1}
        finally:
            await h.stop()


# ---------------------------------------------------------------------- 410 and relists


def _change_while_away(api: FakeKubeAPI) -> None:
    """Changes the client never hears about (as if disconnected), then history is gone."""
    api.delete("services", "shop", "web1", notify=False)
    api.delete("endpointslices", "shop", "web1-x1", notify=False)
    api.delete("endpointslices", "shop", "web2-x1", notify=False)
    api.put("services", service("shop", "web0", cluster_ip="198.18.7.7"), notify=False)
    api.put("services", service("shop", "fresh", cluster_ip="198.18.7.8"), notify=False)
    api.put("endpointslices", endpoint_slice("shop", "fresh-1", "fresh", ["198.19.7.8"]),
            notify=False)


def _assert_relisted_state(src: KubeSource, health: Health) -> None:
    assert names(src) == {"shop/web0", "shop/web2", "shop/web3", "shop/fresh"}
    assert slice_names(src) == {"shop/web0-x1", "shop/web3-x1", "shop/fresh-1"}
    assert str(src.inventory.services[("shop", "web0")].cluster_ips[0]) == "198.18.7.7"
    assert health.inventory_services == 4
    assert health.inventory_endpoints == 2 + 2 + 1


async def test_410_error_event_relists_and_drops_vanished_objects(harness: Harness) -> None:
    api = harness.api
    populate(api, 4)
    src = await harness.start()
    await wait_for(lambda: api.watchers() == 2, "watches")
    src.changed.clear()
    _change_while_away(api)
    api.expire()  # ERROR 410 event on both open watches
    await wait_for(lambda: harness.health.relists == {"services": 2, "endpointslices": 2},
                   "relists")
    await wait_for(lambda: "shop/fresh" in names(src) and "shop/web1" not in names(src),
                   "relisted state published")
    _assert_relisted_state(src, harness.health)
    assert src.changed.is_set()
    assert harness.restarts("services", "expired") == 1
    assert harness.restarts("endpointslices", "expired") == 1
    # The new watch starts from the relist's resourceVersion and keeps working.
    await wait_for(lambda: api.watchers() == 2, "watches again")
    assert api.requests_for("services", "watch")[-1].params["resourceVersion"] == api.rv()
    api.delete("services", "shop", "fresh")
    await wait_for(lambda: "shop/fresh" not in names(src), "event after relist")


async def test_http_410_on_watch_relists_and_drops_vanished_objects(tmp_path: Path) -> None:
    async with FakeKubeAPI(token=TOKEN, expired_as="http") as api:
        h = Harness(api, tmp_path)
        try:
            populate(api, 4)
            src = await h.start()
            await wait_for(lambda: api.watchers() == 2, "watches")
            _change_while_away(api)
            api.expire()  # streams end; the re-watch from the old RV gets HTTP 410
            await wait_for(lambda: h.health.relists == {"services": 2, "endpointslices": 2},
                           "relists")
            await wait_for(lambda: "shop/fresh" in names(src), "relisted state")
            _assert_relisted_state(src, h.health)
            assert any(r.status == 410 for r in api.requests_for("services", "watch"))
            assert h.restarts("services", "expired") == 1
        finally:
            await h.stop()


async def test_expired_continue_token_restarts_the_list(harness: Harness) -> None:
    api = harness.api
    populate(api, 5)
    api.fail("list", "services", status=410, continue_only=True)
    src = await harness.start(page_size=2)
    assert names(src) == {f"shop/web{i}" for i in range(5)}
    lists = api.requests_for("services", "list")
    assert [("continue" in r.params, r.status) for r in lists] == [
        (False, 200), (True, 410), (False, 200), (True, 200), (True, 200)]
    assert harness.health.relists["services"] == 2
    assert harness.health.relists["endpointslices"] == 1


async def test_relist_whose_continue_expires_still_drops_vanished_objects(
        harness: Harness) -> None:
    api = harness.api
    populate(api, 4)
    src = await harness.start(page_size=2)
    await wait_for(lambda: api.watchers() == 2, "watches")
    _change_while_away(api)
    api.fail("list", "services", status=410, continue_only=True)
    api.expire()
    await wait_for(lambda: harness.health.relists.get("services") == 3, "restarted relist")
    await wait_for(lambda: "shop/fresh" in names(src) and "shop/web1" not in names(src),
                   "relisted state")
    _assert_relisted_state(src, harness.health)


# ---------------------------------------------------------------------- broken streams


@pytest.mark.parametrize("abort", [False, True], ids=["clean-close", "connection-reset"])
async def test_server_closing_streams_rewatches_from_the_last_rv(harness: Harness,
                                                                 abort: bool) -> None:
    api = harness.api
    populate(api, 3)
    src = await harness.start()
    await wait_for(lambda: api.watchers() == 2, "watches")
    api.put("services", service("shop", "a1", cluster_ip="198.18.3.1"))
    await wait_for(lambda: ("shop", "a1") in src.inventory.services, "event")
    last = api.rv()
    assert api.close_watches("services", abort=abort) == 1
    await wait_for(lambda: len(api.requests_for("services", "watch")) == 2, "re-watch")
    assert api.requests_for("services", "watch")[1].params["resourceVersion"] == last
    api.put("services", service("shop", "a2", cluster_ip="198.18.3.2"))
    await wait_for(lambda: ("shop", "a2") in src.inventory.services, "event after re-watch")
    assert harness.health.relists == {"services": 1, "endpointslices": 1}
    reason = "connection_error" if abort else "closed"
    assert harness.restarts("services", reason) == 1
    assert len(api.requests_for("endpointslices", "watch")) == 1


async def test_half_open_watch_hits_the_read_timeout_and_reconnects(harness: Harness) -> None:
    api = harness.api
    populate(api, 3)
    src = await harness.start(read_timeout_seconds=0.5)
    await wait_for(lambda: api.watchers() == 2, "watches")
    api.put("services", service("shop", "b1", cluster_ip="198.18.3.1"))
    await wait_for(lambda: ("shop", "b1") in src.inventory.services, "event")
    last = api.rv()
    # The stream stays open but nothing arrives any more; reconnects hang before the headers.
    api.hang_new = "silent"
    assert api.hang_watches("services") == 1
    await wait_for(lambda: harness.restarts("services", "timeout") >= 2, "read timeouts")
    assert "read timeout" in src.last_error
    api.hang_new = False
    await wait_for(lambda: api.watchers("services") == 1, "healthy re-watch")
    api.put("services", service("shop", "b2", cluster_ip="198.18.3.2"))
    await wait_for(lambda: ("shop", "b2") in src.inventory.services, "event after reconnect")
    assert all(r.params["resourceVersion"] == last
               for r in api.requests_for("services", "watch")[1:])
    assert harness.health.relists == {"services": 1, "endpointslices": 1}


async def test_garbage_and_unknown_event_types_are_skipped(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    api = harness.api
    populate(api, 2)
    src = await harness.start()
    await wait_for(lambda: api.watchers() == 2, "watches")
    api.send_raw("services", b'{"type":"SOMETHING_NEW","object":{"kind":"Service"}}')
    api.put("services", service("shop", "c1", cluster_ip="198.18.3.1"))
    await wait_for(lambda: ("shop", "c1") in src.inventory.services, "event after unknown type")
    assert "unknown type 'SOMETHING_NEW'" in caplog.text
    assert harness.restarts("services", "invalid") == 0

    last = api.rv()
    api.send_raw("services", b"this is not json")
    await wait_for(lambda: harness.restarts("services", "invalid") == 1, "invalid stream")
    api.put("services", service("shop", "c2", cluster_ip="198.18.3.2"))
    await wait_for(lambda: ("shop", "c2") in src.inventory.services, "event after re-watch")
    assert api.requests_for("services", "watch")[1].params["resourceVersion"] == last
    assert harness.health.relists == {"services": 1, "endpointslices": 1}


# ---------------------------------------------------------------------- errors and backoff


async def test_server_errors_back_off_exponentially_with_jitter(harness: Harness) -> None:
    api = harness.api
    populate(api, 2)
    api.fail("list", "services", status=500, times=4)
    src = await harness.start(backoff_initial=0.2, backoff_max=30.0)
    assert harness.restarts("services", "http_error") == 4
    delays = harness.sleeps.delays[:4]
    assert len(delays) == 4
    for n, d in enumerate(delays):  # attempt n: uniform in [b/2, b], b = 0.2 * 2**n
        b = 0.2 * 2 ** n
        assert b / 2 <= d <= b, (n, d)
    assert len(set(delays)) == 4
    assert names(src) == {"shop/web0", "shop/web1"}

    # A failing watch keeps its resourceVersion: errors do not cause relists.
    await wait_for(lambda: api.watchers() == 2, "watches")
    last = api.rv()
    api.fail("watch", "services", status=503, times=2)
    api.close_watches("services")
    await wait_for(lambda: api.watchers("services") == 1 and
                   len(api.requests_for("services", "watch")) == 4, "re-watch after 503s")
    assert [r.status for r in api.requests_for("services", "watch")] == [200, 503, 503, 200]
    assert {r.params["resourceVersion"] for r in api.requests_for("services", "watch")[1:]} == {last}
    assert harness.health.relists == {"services": 1, "endpointslices": 1}


async def test_429_honours_retry_after(harness: Harness) -> None:
    api = harness.api
    populate(api, 2)
    api.fail("list", "endpointslices", status=429, retry_after="7")
    src = await harness.start(backoff_initial=0.2)
    assert harness.restarts("endpointslices", "throttled") == 1
    assert harness.sleeps.delays and harness.sleeps.delays[0] >= 7
    await wait_for(lambda: api.watchers() == 2, "watches")
    api.fail("watch", "services", status=429, retry_after="11")
    api.close_watches("services")
    await wait_for(lambda: harness.restarts("services", "throttled") == 1, "429 on watch")
    assert max(harness.sleeps.delays) >= 11
    await wait_for(lambda: api.watchers("services") == 1, "re-watch after 429")
    assert len(src.inventory) == 2


async def test_forbidden_is_reported_and_retried(harness: Harness) -> None:
    api = harness.api
    populate(api, 2)
    api.fail("list", "services", status=403, times=10**6)
    src = await harness.start(sync=False)
    await wait_for(lambda: harness.restarts("services", "forbidden") >= 2, "403s")
    assert "403" in src.last_error and not harness.health.kube_synced
    api.clear_faults()
    assert await src.wait_synced(15)
    assert names(src) == {"shop/web0", "shop/web1"}


# ---------------------------------------------------------------------- model contents


async def test_labels_and_annotations_are_kept_but_last_applied_is_dropped(
        harness: Harness) -> None:
    api = harness.api
    last_applied = json.dumps({"apiVersion": "v1", "kind": "Service", "spec": {"x": "y" * 500}})
    api.put("services", service(
        "shop", "web", cluster_ip="198.18.0.1", labels={"app": "web", "tier": "front"},
        annotations={"svcprobe.io/ignore": "true",
                     "kubectl.kubernetes.io/last-applied-configuration": last_applied}))
    src = await harness.start()
    web = src.inventory.services[("shop", "web")]
    assert dict(web.labels) == {"app": "web", "tier": "front"}
    assert dict(web.annotations) == {"svcprobe.io/ignore": "true"}
    # and the same through a watch event
    api.put("services", service(
        "shop", "web", cluster_ip="198.18.0.1", labels={"app": "web"},
        annotations={"svcprobe.io/skip-dns": "true",
                     "kubectl.kubernetes.io/last-applied-configuration": last_applied}))
    await wait_for(lambda: dict(src.inventory.services[("shop", "web")].annotations)
                   == {"svcprobe.io/skip-dns": "true"}, "modified annotations")
    assert dict(src.inventory.services[("shop", "web")].labels) == {"app": "web"}


def test_only_the_discovery_package_imports_the_kubernetes_client() -> None:
    import ast

    root = Path(__file__).resolve().parents[2] / "agent"
    offenders = []
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "discovery"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            if any(m == "kubernetes" or m.startswith("kubernetes.") for m in mods):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


# ---------------------------------------------------------------------- malformed objects


async def test_malformed_objects_are_skipped_counted_and_named(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    api = harness.api
    populate(api, 3)
    bad_svc = service("shop", "bad-ports", cluster_ip="198.18.3.9")
    bad_svc["spec"]["ports"] = "eighty"
    api.put("services", bad_svc)
    bad_slice = endpoint_slice("shop", "web0-bad", "web0", ["198.19.3.1", "not-an-ip"])
    api.put("endpointslices", bad_slice)
    api.put("services", {"metadata": "broken", "spec": {}}, key=("shop", "no-meta"))
    src = await harness.start()

    assert names(src) == {"shop/web0", "shop/web1", "shop/web2"}
    assert "shop/web0-bad" not in slice_names(src)
    assert harness.health.skipped["malformed"] == 3
    assert "spec.ports" in caplog.text
    assert "endpoints[1].addresses[0]" in caplog.text and "not-an-ip" in caplog.text
    assert "metadata" in caplog.text

    # A good object turning bad leaves the inventory (no stale version is kept) ...
    broken = service("shop", "web1", cluster_ip="198.18.0.2")
    broken["spec"]["type"] = "Teleport"
    api.put("services", broken)
    await wait_for(lambda: "shop/web1" not in names(src), "bad modification")
    assert harness.health.skipped["malformed"] == 4
    assert "spec.type" in caplog.text
    # ... and comes back when fixed; unrelated events kept flowing all along.
    api.put("services", service("shop", "web1", cluster_ip="198.18.0.22"))
    api.put("services", service("shop", "ok", cluster_ip="198.18.3.10"))
    await wait_for(lambda: {"shop/web1", "shop/ok"} <= names(src), "recovery")
    assert str(src.inventory.services[("shop", "web1")].cluster_ips[0]) == "198.18.0.22"
    # An unchanged malformed object is not counted again by a relist (one without a name
    # cannot be recognised, so it is removed first).
    api.delete("services", "shop", "no-meta", notify=False)
    api.expire()
    await wait_for(lambda: harness.health.relists == {"services": 2, "endpointslices": 2},
                   "relists")
    assert harness.health.skipped["malformed"] == 4
    assert harness.health.relists["services"] == 2
    assert harness.health.kube_synced


# ---------------------------------------------------------------------- auth and configuration


async def test_kubeconfig_bearer_token_is_sent_and_never_logged(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = harness.api
    populate(api, 2)
    src = await harness.start()
    assert names(src) == {"shop/web0", "shop/web1"}
    assert api.requests and all(r.authorized for r in api.requests)
    assert src.server == api.url
    assert TOKEN not in caplog.text


async def test_wrong_token_is_reported_without_the_token(
        api: FakeKubeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    populate(api, 1)
    h = Harness(api, tmp_path)
    bad = "tok-WRONG-0d1e2f3a4b5c"
    h.kubeconfig = write_kubeconfig(tmp_path / "bad-kubeconfig", api.url, token=bad)
    try:
        src = await h.start(sync=False)
        await wait_for(lambda: h.restarts("services", "unauthorized") >= 2, "401s")
        assert not await src.wait_synced(0.05)
        assert "401" in src.last_error
        assert not h.health.kube_synced
        assert bad not in caplog.text and TOKEN not in caplog.text
        assert bad not in src.last_error
    finally:
        await h.stop()


async def test_rotated_token_file_is_read_again_after_a_401(
        api: FakeKubeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    populate(api, 2)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    h = Harness(api, tmp_path)
    h.kubeconfig = write_kubeconfig(tmp_path / "kc-file", api.url, token=None,
                                    token_file=token_file)
    try:
        src = await h.start()
        await wait_for(lambda: api.watchers() == 2, "watches")
        rotated = "tok-ROTATED-99aa88bb"
        token_file.write_text(rotated)
        api.token = rotated  # the old token is now rejected
        api.close_watches()
        await wait_for(lambda: h.restarts("services", "unauthorized") >= 1, "401")
        await wait_for(lambda: api.watchers() == 2, "re-watch with the new token")
        api.put("services", service("shop", "after", cluster_ip="198.18.3.1"))
        await wait_for(lambda: ("shop", "after") in src.inventory.services, "event")
        assert h.health.relists == {"services": 1, "endpointslices": 1}
        assert rotated not in caplog.text and TOKEN not in caplog.text
    finally:
        await h.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    d = tmp_path / "pki"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=svcprobe-test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key"}


def _server_ssl(tls: dict[str, Path]) -> Any:
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls["cert"], tls["key"])
    return ctx


async def test_in_cluster_service_account_over_tls_with_token_rotation(
        tmp_path: Path, tls_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeKubeAPI(token=TOKEN, ssl_context=_server_ssl(tls_files)) as api:
        populate(api, 2)
        token_file = tmp_path / "sa-token"
        token_file.write_text(TOKEN)
        spec = ConnectionSpec(token_path=str(token_file), ca_path=str(tls_files["ca"]),
                              environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                       "KUBERNETES_SERVICE_PORT": str(api.port)})
        assert spec.describe() == "in-cluster ServiceAccount"
        h = Harness(api, tmp_path)
        try:
            src = await h.start(connection=spec)
            assert src.server == api.url and api.url.startswith("https://")
            assert names(src) == {"shop/web0", "shop/web1"}
            await wait_for(lambda: api.watchers() == 2, "watches")
            rotated = "tok-SA-ROTATED-5566"
            token_file.write_text(rotated)
            api.token = rotated
            api.close_watches()
            await wait_for(lambda: api.watchers() == 2 and
                           h.restarts("services", "unauthorized") >= 1, "re-watch after 401")
            api.put("services", service("shop", "after", cluster_ip="198.18.3.1"))
            await wait_for(lambda: ("shop", "after") in src.inventory.services, "event")
            assert rotated not in caplog.text and TOKEN not in caplog.text
        finally:
            await h.stop()


async def test_tls_server_not_signed_by_the_configured_ca_is_refused(
        tmp_path: Path, tls_files: dict[str, Path]) -> None:
    async with FakeKubeAPI(token=TOKEN, ssl_context=_server_ssl(tls_files)) as api:
        populate(api, 1)
        h = Harness(api, tmp_path)
        h.kubeconfig = write_kubeconfig(tmp_path / "kc-noca", api.url)  # system CAs only
        try:
            src = await h.start(sync=False)
            await wait_for(lambda: h.restarts("services", "connection_error") >= 1, "TLS error")
            assert not h.health.kube_synced and len(src.inventory) == 0
            assert not any(r.resource == "services" for r in api.requests)
        finally:
            await h.stop()
        h2 = Harness(api, tmp_path)
        h2.kubeconfig = write_kubeconfig(tmp_path / "kc-ca", api.url, ca_file=tls_files["ca"])
        try:
            src = await h2.start()
            assert names(src) == {"shop/web0"}
        finally:
            await h2.stop()


async def test_built_from_the_kubernetes_settings(api: FakeKubeAPI, tmp_path: Path) -> None:
    from agent.settings import KubernetesSettings

    populate(api, 4)
    kc = write_kubeconfig(tmp_path / "kc", api.url, context="ctx-b")
    k = KubernetesSettings(kubeconfig=str(kc), context="ctx-b", page_size=3,
                           watch_timeout_seconds=40, read_timeout_seconds=50)
    src = KubeSource.from_settings(k, Health(), publish_interval=0.01)
    task = asyncio.create_task(src.run())
    try:
        assert await src.wait_synced(15)
        assert names(src) == {f"shop/web{i}" for i in range(4)}
        assert [r.params["limit"] for r in api.requests_for("services", "list")] == ["3", "3"]
        await wait_for(lambda: api.watchers() == 2, "watches")
        assert 40 <= int(api.requests_for("services", "watch")[0].params["timeoutSeconds"]) <= 80
        assert src.describe() == f"kubeconfig {kc} context ctx-b"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_configuration_errors_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "kubeconfig"
    src = KubeSource(Health(), kubeconfig=str(missing))
    with pytest.raises(DiscoveryConfigError, match="nope/kubeconfig"):
        await src.connect()

    kc = write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:1")
    src = KubeSource(Health(), kubeconfig=str(kc), context="does-not-exist")
    with pytest.raises(DiscoveryConfigError, match="does-not-exist"):
        await src.connect()

    # Not in a cluster ($KUBERNETES_SERVICE_HOST unset) and no kubeconfig.
    spec = ConnectionSpec(kubeconfig="", environ={"KUBECONFIG": str(missing)})
    with pytest.raises(DiscoveryConfigError, match="not running in a cluster"):
        await KubeSource(Health(), connection=spec).connect()

    # run() fails the same way, and wait_synced() reports it instead of hanging.
    src = KubeSource(Health(), kubeconfig=str(missing))
    task = asyncio.create_task(src.run())
    with pytest.raises(DiscoveryConfigError):
        await src.wait_synced(10)
    with pytest.raises(DiscoveryConfigError):
        await task


async def test_unreachable_api_server_keeps_retrying_and_reports(tmp_path: Path) -> None:
    async with FakeKubeAPI() as api:
        url = api.url
    h = Harness(None, tmp_path, url=url)  # nothing listens there any more
    try:
        src = await h.start(sync=False)
        await wait_for(lambda: h.restarts("services", "connection_error") >= 3, "retries")
        assert not await src.wait_synced(0.05)
        assert "connection" in src.last_error
        assert len(h.sleeps.delays) >= 3
    finally:
        await h.stop()


# ---------------------------------------------------------------------- wire decoding


def test_list_items_are_decoded_one_by_one_whatever_the_member_order() -> None:
    top: dict[str, Any] = {}
    text = ' { "items" : [ {"a": 1} , {"b": [2, 3]} ] , "metadata": {"resourceVersion": "9"},' \
           ' "kind": "ServiceList" } \n'
    assert list(iter_list_items(text, top)) == [{"a": 1}, {"b": [2, 3]}]
    assert top == {"metadata": {"resourceVersion": "9"}, "kind": "ServiceList"}
    top = {}
    assert list(iter_list_items('{"metadata":{},"items":[]}', top)) == []
    assert top == {"metadata": {}}
    assert list(iter_list_items('{"metadata":{},"items":null}', top)) == []


@pytest.mark.parametrize("text", [
    "", "[]", '{"items":[{"a":1}', '{"items":[{"a":1}]', '{"items":[{"a":1} {"b":2}]}',
    '{"items":[1,]}', '{"metadata":{}} trailing', '{"items":[{"a":1}]}]', '{1:2}',
])
def test_broken_list_bodies_raise_stream_error(text: str) -> None:
    with pytest.raises(StreamError):
        list(iter_list_items(text, {}))
