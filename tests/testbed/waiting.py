"""Bounded polling, the only way the bed and its tests wait for something.

`eventually` is for tests: it raises AssertionError. `wait_for` is the bed's own: it raises
TestBedError, and a `watch` callback can stop the wait early (components.Processes.wait uses it
to fail as soon as the process that should make the condition true has exited).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.testbed.errors import TestBedError


def eventually(
    probe: Callable[[], Any], *, timeout: float = 30, interval: float = 0.5, what: str = ""
) -> Any:
    """Polls probe() until it returns something truthy (bounded); returns it or raises
    AssertionError with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what or probe!r}; last: {last!r}")
        time.sleep(interval)


def wait_for(
    what: str,
    probe: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.5,
    watch: Callable[[], None] | None = None,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Polls probe() until it returns something truthy; bounded by `timeout` seconds.

    After each miss, watch() runs (it raises to give up early). On timeout the TestBedError
    names `what`, followed by detail() (for example a log excerpt)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if watch is not None:
            watch()
        if time.monotonic() > deadline:
            extra = detail() if detail is not None else ""
            raise TestBedError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)
