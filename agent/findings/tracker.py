"""Findings over time: when each was first seen, and a log line when one appears or clears."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from agent.findings.kinds import Finding

log = logging.getLogger(__name__)


class FindingTracker:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.current: list[Finding] = []
        self._first_seen: dict[tuple[str, str], float] = {}

    def update(self, findings: Sequence[Finding]) -> list[Finding]:
        """Take the findings of the latest sweep; a finding seen in the previous one keeps its
        first_seen. Returns them."""
        now = self.clock()
        before = self._first_seen
        self._first_seen = {}
        for f in findings:
            f.first_seen = self._first_seen[f.key] = before.get(f.key, now)
            if f.key not in before:
                log.warning("finding: %s: %s", f.kind.value, f.summary,
                            extra={"event": "finding", "kind": f.kind.value, "suspect": str(f.suspect)})
        for key in before.keys() - self._first_seen.keys():
            log.info("finding cleared after %.0fs: %s %s", now - before[key], *key,
                     extra={"event": "finding_cleared", "kind": key[0], "suspect": key[1]})
        self.current = list(findings)
        return self.current
