"""Inventory sources: something that holds the current inventory and keeps it fresh."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agent import model
from agent.inventory import static
from agent.health import Health

log = logging.getLogger(__name__)


class Source(Protocol):
    inventory: model.Inventory
    changed: asyncio.Event

    async def run(self) -> None:
        """Keep `inventory` current until cancelled."""


def _note(health: Health, inventory: model.Inventory) -> None:
    health.inventory_services = len(inventory)
    health.inventory_endpoints = inventory.endpoint_count()
    health.inventory_synced = True


class StaticSource:
    """A manifest file, polled for changes. A bad rewrite keeps the last good inventory."""

    def __init__(self, path: str, health: Health, *, reload_seconds: float) -> None:
        self.path = path
        self.health = health
        self.reload_seconds = reload_seconds
        self.changed = asyncio.Event()
        self.inventory = model.Inventory()
        self._stamp: tuple[int, int, int] | None = None

    def load_initial(self) -> static.LoadResult:
        """Load at start-up; raises `static.InventoryError`; the caller decides on errors."""
        self._stamp = static.file_stamp(self.path)
        result = static.load_file(self.path)
        self._account(result)
        if result.ok:
            self.health.reloads["ok"] += 1
            self.inventory = result.inventory
            _note(self.health, self.inventory)
        return result

    def _account(self, result: static.LoadResult) -> None:
        self.health.skipped["unsupported_kind"] += len(result.warnings)
        self.health.skipped["malformed"] += len(result.errors)
        for w in result.warnings:
            log.warning("%s", w)
        for e in result.errors:
            log.error("%s", e)

    def reload_if_changed(self) -> bool:
        """Reload when the file changed; True when a new inventory was taken."""
        stamp = static.file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            result = static.load_file(self.path)
        except static.InventoryError as exc:
            self.health.reloads["error"] += 1
            self.health.last_inventory_error = str(exc)
            log.error("inventory reload failed, keeping the last good inventory: %s", exc)
            return False
        self._account(result)
        if not result.ok:
            self.health.reloads["error"] += 1
            self.health.last_inventory_error = f"{len(result.errors)} malformed object(s); first: {result.errors[0]}"
            log.error("inventory reload rejected (%d malformed objects), keeping the last good inventory",
                      len(result.errors))
            return False
        self.health.reloads["ok"] += 1
        self.health.last_inventory_error = ""
        self.inventory = result.inventory
        _note(self.health, self.inventory)
        self.changed.set()
        log.info("inventory reloaded: %d Services", len(self.inventory))
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            self.reload_if_changed()
