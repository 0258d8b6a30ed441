"""`StaticSource`: a manifest file as the inventory, polled for changes."""

from __future__ import annotations

import asyncio
import logging

from agent import model
from agent.health import Health
from agent.inventory import manifests

log = logging.getLogger(__name__)


class StaticSource:
    """A manifest file, polled for changes (implements `agent.discovery.source.Source`).

    A bad rewrite keeps the last good inventory."""

    def __init__(self, path: str, health: Health, *, reload_seconds: float) -> None:
        self.path = path
        self.health = health
        self.reload_seconds = reload_seconds
        self.changed = asyncio.Event()
        self.inventory = model.Inventory()
        self._stamp: tuple[int, int, int] | None = None

    def load_initial(self) -> manifests.LoadResult:
        """Load at start-up; raises `manifests.InventoryError`; the caller decides on errors."""
        self._stamp = manifests.file_stamp(self.path)
        result = manifests.load_file(self.path)
        self._account(result)
        if result.ok:
            self._take(result.inventory)
        return result

    def _account(self, result: manifests.LoadResult) -> None:
        self.health.note_skipped("unsupported_kind", len(result.warnings))
        self.health.note_skipped("malformed", len(result.errors))
        for w in result.warnings:
            log.warning("%s", w)
        for e in result.errors:
            log.error("%s", e)

    def reload_if_changed(self) -> bool:
        """Reload when the file changed; True when a new inventory was taken."""
        stamp = manifests.file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            result = manifests.load_file(self.path)
        except manifests.InventoryError as exc:
            self.health.note_reload(ok=False, error=str(exc))
            log.error("inventory reload failed, keeping the last good inventory: %s", exc)
            return False
        self._account(result)
        if not result.ok:
            self.health.note_reload(ok=False, error=f"{len(result.errors)} malformed object(s); "
                                               f"first: {result.errors[0]}")
            log.error("inventory reload rejected (%d malformed objects), keeping the last good inventory",
                      len(result.errors))
            return False
        self._take(result.inventory)
        self.changed.set()
        log.info("inventory reloaded: %d Services", len(self.inventory))
        return True

    def _take(self, inventory: model.Inventory) -> None:
        self.inventory = inventory
        self.health.note_reload(ok=True)
        self.health.note_inventory(len(inventory), inventory.endpoint_count())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            self.reload_if_changed()
