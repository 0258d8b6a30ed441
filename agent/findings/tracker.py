"""Findings over time: when each was first seen, and a log line when one appears or clears."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from agent.findings.kinds import Finding

log = logging.getLogger(__name__)
MAX_LOGGED = 20  # new (and cleared) findings logged per sweep; the rest are counted


class FindingTracker:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.current: list[Finding] = []
        self._first_seen: dict[tuple[str, str], float] = {}

    def update(self, findings: Sequence[Finding], *, log_changes: bool = True) -> list[Finding]:
        """Take the findings of the latest sweep; a finding seen in the previous one keeps its
        first_seen. Logs new and cleared ones (at most MAX_LOGGED of each per sweep, then a
        count). Returns them."""
        now = self.clock()
        before = self._first_seen
        self._first_seen = {}
        new = []
        for f in findings:
            f.first_seen = self._first_seen[f.key] = before.get(f.key, now)
            if f.key not in before:
                new.append(f)
        cleared = sorted(before.keys() - self._first_seen.keys())
        if log_changes:
            for f in new[:MAX_LOGGED]:
                log.warning("finding: %s: %s", f.kind.value, f.summary,
                            extra={"event": "finding", "kind": f.kind.value, "suspect": str(f.suspect)})
            for key in cleared[:MAX_LOGGED]:
                log.info("finding cleared after %.0fs: %s %s", now - before[key], *key,
                         extra={"event": "finding_cleared", "kind": key[0], "suspect": key[1]})
            more = max(0, len(new) - MAX_LOGGED) + max(0, len(cleared) - MAX_LOGGED)
            if more:
                log.warning("... and %d more findings appeared or cleared (see /api/v1/findings)", more,
                            extra={"event": "finding_more", "count": more})
        self.current = list(findings)
        return self.current
