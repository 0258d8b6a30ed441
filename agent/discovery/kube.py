"""`KubeSource`: the live cluster's Services and EndpointSlices as an inventory Source.

Mirrors every `v1` Service and `discovery.k8s.io/v1` EndpointSlice cluster-wide (selection is
the planner's job) with one list+watch per resource (`agent.discovery.listwatch`).

Publishing: the reflectors update their dicts of model objects as events arrive; a publisher
task turns them into a fresh immutable `model.Inventory` and sets `changed`. Rebuilding costs
O(Services + slices) (about 5 ms at 10,000 Services / 1,000 slices), so it is throttled: the
first change after a quiet period is published at once, further changes at most once every
`publish_interval` seconds (default 0.2 s), so an event storm costs a handful of rebuilds per
second instead of one per event. Nothing is published before both resources have completed
their first list (a Service must not be seen without its slices), nor while a relist is in
progress (its state is a mix of old and new).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from typing import TYPE_CHECKING, Any

from agent import model
from agent.discovery import listwatch
from agent.discovery.client import ApiClient, ConnectionSpec, DiscoveryConfigError
from agent.health import Health
from agent.inventory import parse

if TYPE_CHECKING:
    from agent.settings import KubernetesSettings

log = logging.getLogger(__name__)

__all__ = ["ConnectionSpec", "DiscoveryConfigError", "KubeSource"]


class KubeSource:
    """Implements `agent.discovery.source.Source` from the Kubernetes API.

    Typical use::

        source = KubeSource(health, kubeconfig=..., context=...)
        await source.connect()                 # DiscoveryConfigError on a bad configuration
        task = asyncio.create_task(source.run())
        if not await source.wait_synced(30):   # False on timeout; source.last_error says why
            ...
    """

    def __init__(
        self,
        health: Health,
        *,
        kubeconfig: str = "",
        context: str = "",
        page_size: int = 500,
        watch_timeout_seconds: float = 300.0,
        read_timeout_seconds: float = 90.0,
        connect_timeout_seconds: float = 10.0,
        publish_interval: float = 0.2,
        max_event_bytes: int = listwatch.MAX_EVENT_BYTES,
        max_list_pages: int = listwatch.MAX_LIST_PAGES,
        label_keys: frozenset[str] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connection: ConnectionSpec | None = None,
        sleep: listwatch.Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.health = health
        self.inventory = model.Inventory()
        self.changed = asyncio.Event()
        self.publish_interval = publish_interval
        self.spec = connection or ConnectionSpec(kubeconfig=kubeconfig, context=context)
        self.client = ApiClient(self.spec, connect_timeout=connect_timeout_seconds)
        rng = rng or random.Random()

        def reflector(kind: listwatch.ResourceKind, **extra: Any) -> listwatch.Reflector:
            return listwatch.Reflector(
                kind, self.client, health, page_size=page_size, watch_timeout=watch_timeout_seconds,
                read_timeout=read_timeout_seconds, on_change=self._on_change, on_synced=self._on_synced,
                sleep=sleep, rng=rng, backoff=listwatch.Backoff(backoff_initial, backoff_max, rng),
                max_event_bytes=max_event_bytes, max_pages=max_list_pages, **extra)

        # Of a Service's labels only those the label selector reads are kept (label_keys).
        self.services = reflector(listwatch.SERVICES,
                                  parse=functools.partial(parse.parse_service, label_keys=label_keys))
        self.slices = reflector(listwatch.ENDPOINT_SLICES)
        self._reflectors = (self.services, self.slices)
        self._dirty = asyncio.Event()
        self._synced = asyncio.Event()
        self._published_generation = -1
        self._last_publish = float("-inf")
        self._connected = False
        self._failure: BaseException | None = None
        self._stopped = asyncio.Event()

    @classmethod
    def from_settings(cls, kubernetes: KubernetesSettings, health: Health,
                      **kwargs: Any) -> KubeSource:
        """From `settings.kubernetes`; keyword arguments override or add (e.g. `connection`)."""
        k: dict[str, Any] = {
            "kubeconfig": kubernetes.kubeconfig,
            "context": kubernetes.context,
            "page_size": kubernetes.page_size,
            "watch_timeout_seconds": kubernetes.watch_timeout_seconds,
            "read_timeout_seconds": kubernetes.read_timeout_seconds,
            "max_event_bytes": kubernetes.max_event_bytes,
            "max_list_pages": kubernetes.max_list_pages,
        }
        return cls(health, **{**k, **kwargs})

    # ------------------------------------------------------------------ state

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    @property
    def last_error(self) -> str:
        """The latest list/watch failure not yet followed by success ("" when healthy)."""
        return next((r.last_error for r in self._reflectors if r.last_error), "")

    @property
    def server(self) -> str:
        return self.client.server

    def describe(self) -> str:
        return self.spec.describe()

    def _generation(self) -> int:
        return self.services.generation + self.slices.generation

    def _on_change(self) -> None:
        self._dirty.set()

    def _on_synced(self) -> None:
        if self._synced.is_set() or not all(r.synced for r in self._reflectors):
            return
        self._publish()
        self.health.note_kube_synced()
        self._synced.set()
        log.info("Kubernetes inventory synced: %d Services, %d EndpointSlices, %d endpoints",
                 len(self.services.objects), len(self.slices.objects), self.slices.weight)

    def _publish(self) -> None:
        gen = self._generation()
        inv = model.Inventory(self.services.objects.values(), self.slices.objects.values())
        self.inventory = inv
        self.health.note_inventory(len(inv), self.slices.weight)
        self._published_generation = gen
        self._last_publish = asyncio.get_running_loop().time()
        self.changed.set()

    async def _publisher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            wait = self._last_publish + self.publish_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            if not self._synced.is_set() or any(r.listing for r in self._reflectors):
                continue  # the end of the list sets _dirty again
            if self._generation() != self._published_generation:
                self._publish()

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Load the configuration and credentials; raises DiscoveryConfigError."""
        if not self._connected:
            await self.client.open()
            self._connected = True
            log.info("Kubernetes API %s (%s)", self.client.server, self.spec.describe())

    async def close(self) -> None:
        await self.client.close()
        self._connected = False

    async def run(self) -> None:
        """Keep `inventory` current until cancelled (connects first if needed)."""
        try:
            await self.connect()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.services.run(), name="svcprobe-watch-services")
                tg.create_task(self.slices.run(), name="svcprobe-watch-endpointslices")
                tg.create_task(self._publisher(), name="svcprobe-inventory-publisher")
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._stopped.set()
            await self.close()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until both resources have been listed once and the inventory published.

        True when synced; False after `timeout` seconds (see `last_error`); raises what
        stopped `run()` if it ended before syncing (e.g. DiscoveryConfigError)."""
        if self._synced.is_set():
            return True
        synced = asyncio.ensure_future(self._synced.wait())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({synced, stopped}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
            stopped.cancel()
        if self._synced.is_set():
            return True
        if self._stopped.is_set():
            if self._failure is not None and not isinstance(self._failure, asyncio.CancelledError):
                raise self._failure
            raise RuntimeError("Kubernetes discovery stopped before the first sync")
        return False
