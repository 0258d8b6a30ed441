"""One log event when a Service starts failing and one when it recovers.

Logs are where many teams look first, and a line per failing check each sweep would bury
them. The events are rate-limited: at most MAX_EVENTS of each kind per sweep (the rest in one
summary line), and a Service that flaps reports a new start only HOLD_SECONDS after its last;
every reported start gets its recovery (counted, if not listed, in the summary line).
With `log_format: json` each event carries `event`, `namespace`, `service` and details as
fields of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from agent.results import FailingKey

log = logging.getLogger(__name__)
Key = tuple[str, str]
MAX_EVENTS = 20
HOLD_SECONDS = 300.0


class ServiceTransitions:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._since: dict[Key, float] = {}  # failing Services -> when they started failing
        self._last_start: dict[Key, float] = {}  # Service -> when its last start was reported
        self._open: set[Key] = set()  # reported as failing, recovery not reported yet

    def update(self, failing: Iterable[FailingKey]) -> None:
        """Take the failing series after a sweep and log what changed."""
        now = self.clock()
        what: dict[Key, list[str]] = {}
        for namespace, service, check, path, result in failing:
            what.setdefault((namespace, service), []).append(f"{check} {path} {result}")
        started = sorted(what.keys() - self._since.keys())
        recovered = sorted(self._since.keys() - what.keys())
        # A start is held back while the Service's last one is recent (flapping); a recovery
        # is logged exactly when its start was, so the log never leaves a Service "failing".
        due = [k for k in started if now - self._last_start.get(k, -HOLD_SECONDS) >= HOLD_SECONDS]
        logged = self._log(due, "service_failing", lambda k: (
            logging.WARNING, f"Service {k[0]}/{k[1]} started failing: {', '.join(what[k])}", {"failing": what[k]}))
        for k in logged:
            self._last_start[k] = now
            self._open.add(k)
        self._log([k for k in recovered if k in self._open], "service_recovered", lambda k: (
            logging.INFO, f"Service {k[0]}/{k[1]} recovered after {now - self._since[k]:.0f}s",
            {"failing_seconds": round(now - self._since[k], 1)}))
        self._open -= set(recovered)
        self._since = {k: self._since.get(k, now) for k in what}
        self._last_start = {k: t for k, t in self._last_start.items() if now - t < HOLD_SECONDS}

    def _log(self, keys: list[Key], event: str,
             line: Callable[[Key], tuple[int, str, dict[str, object]]]) -> list[Key]:
        for k in keys[:MAX_EVENTS]:
            level, text, fields = line(k)
            log.log(level, text, extra={"event": event, "namespace": k[0], "service": k[1], **fields})
        more = len(keys) - MAX_EVENTS
        if more > 0:
            log.warning("... and %d more Services (%s)", more, event, extra={"event": f"{event}_more", "count": more})
        return keys
