"""When did each Service last change? Feeds the convergence grace window.

A Service "changes" when its spec (as the model keeps it) or its set of ready endpoints
changes. DNS caches and kube-proxy need a moment to follow; until `grace` seconds have
passed, a differing answer is reported as converging rather than failing.

A change the agent sees happen counts from when it saw it. What already exists at the first
observation (a fresh agent, a one-shot `check`) counts from the latest change the API
recorded for it (`recorded_change`): without that, a Service created a second before
`check` would be reported as failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent import model

Key = tuple[str, str]


def _fingerprint(inventory: model.Inventory, svc: model.Service) -> int:
    ready = tuple((str(e.address), e.hostname, e.ports) for e in inventory.ready_endpoints(svc))
    return hash((svc, ready))


def recorded_change(inventory: model.Inventory, svc: model.Service) -> float:
    """The latest change the API recorded for a Service (0.0: none known): its creation, and
    each slice's creation and last-change trigger time (a pod's readiness change, a new
    Service). Spec updates of an existing Service leave no such trace."""
    return max([svc.created_at, *(max(sl.created_at, sl.trigger_time) for sl in inventory.slices_of(svc))])


# How long a change is remembered after its grace window, for `recently_changed`.
REMEMBER_SECONDS = 600.0


class ConvergenceTracker:
    def __init__(self, grace: float, *, clock: Callable[[], float] = time.time) -> None:
        self.grace = grace
        self.clock = clock
        self._prints: dict[Key, int] | None = None
        self._changed_at: dict[Key, float] = {}

    def observe(self, inventory: model.Inventory) -> None:
        now = self.clock()
        prints = {key: _fingerprint(inventory, svc) for key, svc in inventory.services.items()}
        if self._prints is None:  # the baseline (older times are pruned below)
            for key, svc in inventory.services.items():
                recorded = recorded_change(inventory, svc)
                if recorded > 0.0:
                    # Recorded by other clocks (the API server's; a kubelet's for readiness),
                    # which may run ahead of ours: a future time is taken as now, so skew never
                    # stretches the window beyond `grace` from now.
                    self._changed_at[key] = min(recorded, now)
        else:
            # Our own clock, when we saw it: a spec update leaves no recorded time (the
            # Service's creation stays old), so recorded times could end a window at once.
            for key, fp in prints.items():
                if self._prints.get(key) != fp:
                    self._changed_at[key] = now
        self._prints = prints
        cutoff = now - max(self.grace, REMEMBER_SECONDS)
        self._changed_at = {k: t for k, t in self._changed_at.items() if k in prints and t > cutoff}

    def settle_by(self) -> dict[Key, float]:
        now = self.clock()
        return {k: t + self.grace for k, t in self._changed_at.items() if t + self.grace > now}

    def recently_changed(self) -> list[Key]:
        """Services that changed within the last REMEMBER_SECONDS, most recent first (what a
        replica serving stale data would get wrong)."""
        return sorted(self._changed_at, key=lambda k: -self._changed_at[k])
