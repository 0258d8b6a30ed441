"""What the scheduler needs of a prober (`agent.probes.prober.Prober` in the agent).

Tests drive the scheduler with their own probers through the same interface, so they take
the path production takes: DNS checks through `submit`, TCP checks through `run`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.checks import CheckResult, DnsCheck, TcpCheck


class Prober(Protocol):
    async def run(self, check: DnsCheck | TcpCheck, *, trace: bool = False) -> CheckResult:
        """Run one check and judge it."""
        ...

    def submit(self, check: DnsCheck, on_result: Callable[[CheckResult | None], None]) -> Any:
        """Start a DNS check; `on_result` is called later from the event loop (never inside
        `submit`), with None when no result could be made (logged). Returns a handle for
        `cancel`."""
        ...

    def cancel(self, handle: Any) -> None:
        """Abandon a check started with `submit`: `on_result` will not be called."""
        ...
