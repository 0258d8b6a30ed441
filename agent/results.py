"""One store for what the agent knows: the latest result of every planned check.

Metrics, the JSON API and the CLI report all read from here. Results of checks that are
no longer planned (a Service removed from the inventory) are dropped when the next sweep
begins, so nothing stale is ever exported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from agent.checks import CheckResult

FailingKey = tuple[str, str, str, str, str]  # namespace, service, check, path, result


@dataclasses.dataclass
class SweepStats:
    started_at: float = 0.0  # Unix time
    finished_at: float = 0.0
    duration: float = 0.0
    lag: float = 0.0  # how far the sweep overran its interval
    loop_lag: float = 0.0  # worst event-loop delay seen while it ran
    cpu_seconds: float = 0.0  # CPU time of the event-loop thread during the sweep
    cpu_wait_seconds: float | None = None  # time that thread was runnable but not running
    checks: int = 0
    failing: int = 0

    @property
    def cpu_wait_ratio(self) -> float | None:
        """Of the time the loop wanted a CPU, the share it waited for one."""
        if self.cpu_wait_seconds is None:
            return None
        wanted = self.cpu_seconds + self.cpu_wait_seconds
        return self.cpu_wait_seconds / wanted if wanted > 0 else 0.0

    @property
    def loop_lagging(self) -> bool:
        return self.loop_lag > LOOP_LAG_WARNING

    @property
    def cpu_starved(self) -> bool:
        ratio = self.cpu_wait_ratio
        return (ratio is not None and ratio > CPU_WAIT_WARNING
                and (self.cpu_wait_seconds or 0.0) > CPU_WAIT_MIN_SECONDS)

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": round(self.started_at, 3),
            "finished_at": round(self.finished_at, 3),
            "duration_seconds": round(self.duration, 6),
            "lag_seconds": round(self.lag, 6),
            "event_loop_lag_seconds": round(self.loop_lag, 6),
            "loop_lagging": self.loop_lagging,
            "cpu_seconds": round(self.cpu_seconds, 6),
            "cpu_wait_seconds": None if self.cpu_wait_seconds is None else round(self.cpu_wait_seconds, 6),
            "cpu_wait_ratio": None if self.cpu_wait_ratio is None else round(self.cpu_wait_ratio, 4),
            "cpu_starved": self.cpu_starved,
            "checks": self.checks,
            "failing": self.failing,
        }


# A sweep whose timings were taken while the event loop ran this late is flagged.
LOOP_LAG_WARNING = 0.05
# ... and so is one whose loop thread waited this share of the time it wanted a CPU (another
# process had it), once the waits add up to more than a few scheduler time slices.
CPU_WAIT_WARNING = 0.2
CPU_WAIT_MIN_SECONDS = 0.02


class ResultStore:
    def __init__(self) -> None:
        self._results: dict[tuple[Any, ...], CheckResult] = {}
        self._failing: dict[FailingKey, int] = {}  # failing series -> failing checks behind it
        self._failing_checks = 0
        self.last_sweep: SweepStats | None = None
        self.sweeps = 0
        self.series_dropped = 0  # failing series beyond the series budget, summed per sweep
        # Services dropped by retain_services since the current sweep began: a result of theirs
        # that arrives late (its check was in flight) is not taken back in.
        self._gone: set[tuple[str, str]] = set()
        self._planned: set[tuple[str, str]] = set()  # Services of the current sweep's plan

    # The failing series are kept up to date as results come and go, so that a scrape costs
    # O(failing), not O(all results) (190,000 results at 10,000 Services).
    def _count(self, result: CheckResult, delta: int) -> None:
        if result.passing:
            return
        c = result.check
        key = (c.namespace, c.service, c.kind, c.path, result.result)
        n = self._failing.get(key, 0) + delta
        if n > 0:
            self._failing[key] = n
        else:
            self._failing.pop(key, None)
        self._failing_checks += delta

    def _drop(self, key: tuple[Any, ...]) -> None:
        self._count(self._results.pop(key), -1)

    def retain(self, planned_keys: Iterable[tuple[Any, ...]]) -> None:
        """Forget results of checks that are not planned any more."""
        keep = set(planned_keys)
        for key in [k for k in self._results if k not in keep]:
            self._drop(key)
        self._gone.clear()  # a new plan: what it has is probed again
        self._planned = {(k[1], k[2]) for k in keep}  # keys are (kind, namespace, service, ...)

    def retain_services(self, services: Iterable[tuple[str, str]]) -> None:
        """Forget results of Services that are not probed any more."""
        keep = set(services)
        for key in [k for k, r in self._results.items() if (r.check.namespace, r.check.service) not in keep]:
            self._gone.add((self._results[key].check.namespace, self._results[key].check.service))
            self._drop(key)
        self._gone = (self._gone | self._planned) - keep

    def put(self, result: CheckResult) -> None:
        if self._gone and (result.check.namespace, result.check.service) in self._gone:
            return  # removed while its check was in flight
        key = result.check.key
        old = self._results.get(key)
        if old is not None:
            self._count(old, -1)
        self._results[key] = result
        self._count(result, +1)

    def finish_sweep(self, stats: SweepStats, *, failing_budget: int | None = None) -> None:
        """Record a completed sweep; `failing_budget`: failing series that may be exported
        (the rest are counted as dropped; None: no limit)."""
        stats.failing = self._failing_checks
        self.last_sweep = stats
        self.sweeps += 1
        if failing_budget is not None:
            self.series_dropped += max(0, len(self._failing) - failing_budget)

    def __contains__(self, key: object) -> bool:
        """Whether a check (by its key) has a current result."""
        return key in self._results

    def latest(self) -> list[CheckResult]:
        """Every current result, in no particular order (cheaper than `snapshot`)."""
        return list(self._results.values())

    def snapshot(self) -> list[CheckResult]:
        return sorted(self._results.values(), key=lambda r: _sort_key(r))

    def __len__(self) -> int:
        return len(self._results)

    def failing_series(self) -> list[FailingKey]:
        """Distinct (namespace, service, check, path, result) of failing checks, sorted."""
        return sorted(self._failing)

    def age(self) -> float | None:
        if self.last_sweep is None:
            return None
        return time.time() - self.last_sweep.finished_at


def _sort_key(r: CheckResult) -> tuple[str, ...]:
    c = r.check
    return (c.namespace, c.service, c.kind, c.path, str(getattr(c, "form", "")), str(getattr(c, "qtype", "")),
            str(getattr(c, "address", "")), str(getattr(c, "port", "")))
