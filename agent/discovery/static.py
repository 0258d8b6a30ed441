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

    def __init__(self, path: str, health: Health, *, reload_seconds: float,
                 label_keys: frozenset[str] | None = None) -> None:
        self.path = path
        self.label_keys = label_keys  # the only Service labels kept (None: all)
        self.health = health
        self.reload_seconds = reload_seconds
        self.changed = asyncio.Event()
        self.inventory = model.Inventory()
        self._stamp: tuple[int, int, int] | None = None

    def load_initial(self) -> manifests.LoadResult:
        """Load at start-up; raises `manifests.InventoryError`; the caller decides on errors."""
        self._stamp = manifests.file_stamp(self.path)
        result = manifests.load_file(self.path, label_keys=self.label_keys)
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
        return self._file_changed() and self._apply(self._read())

    def _file_changed(self) -> bool:
        stamp = manifests.file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True

    def _read(self) -> manifests.LoadResult | Exception:
        """Read and parse the file: the result, or why it cannot be used (never raises)."""
        try:
            return manifests.load_file(self.path, label_keys=self.label_keys)
        except manifests.InventoryError as exc:
            return exc
        except Exception as exc:  # nothing in the file may end the agent: keep the last good inventory
            log.exception("inventory reload: unexpected failure reading %s", self.path)
            return exc

    def _apply(self, result: manifests.LoadResult | Exception) -> bool:
        if isinstance(result, Exception):
            error = str(result) if isinstance(result, manifests.InventoryError) else \
                f"{self.path}: unexpected {type(result).__name__}: {str(result)[:200]}"
            self.health.note_reload(ok=False, error=error)
            log.error("inventory reload failed, keeping the last good inventory: %s", error)
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
            if not self._file_changed():
                continue
            # Parsing a large file takes a while: in a thread, so sweeps and /healthz go on.
            self._apply(await asyncio.to_thread(self._read))
