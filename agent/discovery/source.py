"""What every inventory source offers the runner: the current inventory, kept fresh."""

from __future__ import annotations

import asyncio
from typing import Protocol

from agent import model


class Source(Protocol):
    inventory: model.Inventory  # replaced (never mutated) when something changed
    changed: asyncio.Event  # set after `inventory` was replaced

    async def run(self) -> None:
        """Keep `inventory` current until cancelled."""
