"""The agent's own state, reported by /metrics, /readyz and the JSON API.

Readers (metrics, the HTTP server, the CLI) read the fields; writers (inventory sources,
discovery, the runner, the HTTP server's connection limit) go through the `note_*`
methods, so every counter is updated one way and its keys stay the documented label values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass
class Health:
    kube_discovery: bool = False  # the inventory comes from the API (not a static file)
    inventory_services: int = 0
    inventory_endpoints: int = 0
    inventory_synced: bool = False  # the first full inventory has been loaded
    kube_synced: bool = False  # Kubernetes discovery only
    reloads: dict[str, int] = dataclasses.field(default_factory=lambda: {"ok": 0, "error": 0})
    skipped: dict[str, int] = dataclasses.field(default_factory=lambda: {"unsupported_kind": 0, "malformed": 0})
    watch_restarts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    relists: dict[str, int] = dataclasses.field(default_factory=dict)
    planned: dict[str, int] = dataclasses.field(default_factory=lambda: {"dns": 0, "tcp": 0, "not_probed": 0})
    capped: dict[str, int] = dataclasses.field(default_factory=dict)  # limit -> Services cut short
    last_inventory_error: str = ""
    draining: bool = False
    shard_peers: int = 0  # agents found (this one included)
    shard_selected: int = 0  # Services selected cluster-wide, canaries excluded
    shard_owned: int = 0  # of those, probed by this agent
    shard_canaries: int = 0
    expected_cluster_qps: float = 0.0  # DNS queries/s all agents together send, by the formula
    # HTTP connections the server closed to stay within its connection limit (agent/server.py)
    http_shed: dict[str, int] = dataclasses.field(default_factory=lambda: {"evicted": 0, "busy": 0})

    def note_kube_discovery(self) -> None:
        """The inventory comes from the Kubernetes API (svcprobe_kube_synced is exported)."""
        self.kube_discovery = True

    def note_inventory(self, services: int, endpoints: int) -> None:
        """A complete inventory was taken (the first one marks the agent synced)."""
        self.inventory_services, self.inventory_endpoints = services, endpoints
        self.inventory_synced = True

    def note_kube_synced(self) -> None:
        self.kube_synced = True

    def note_reload(self, *, ok: bool, error: str = "") -> None:
        """A static inventory (re)load: taken, or rejected with `error` (the last good one kept)."""
        self.reloads["ok" if ok else "error"] += 1
        self.last_inventory_error = "" if ok else error

    def note_skipped(self, reason: str, count: int = 1) -> None:
        """Objects not taken into the inventory: `unsupported_kind` or `malformed`."""
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def note_watch_restart(self, resource: str, reason: str) -> None:
        key = (resource, reason)
        self.watch_restarts[key] = self.watch_restarts.get(key, 0) + 1

    def note_relist(self, resource: str) -> None:
        self.relists[resource] = self.relists.get(resource, 0) + 1

    def note_plan(self, *, dns: int, tcp: int, not_probed: int, capped: Mapping[str, int] | None = None) -> None:
        self.planned.update(dns=dns, tcp=tcp, not_probed=not_probed)
        self.capped = dict(capped or {})

    def note_share(self, *, peers: int, selected: int, owned: int, canaries: int, expected_qps: float) -> None:
        self.shard_peers, self.shard_selected, self.shard_owned, self.shard_canaries = peers, selected, owned, canaries
        self.expected_cluster_qps = expected_qps

    def note_http_shed(self, reason: str) -> None:
        """An HTTP connection closed to stay within the limit: `evicted` (idle) or `busy`."""
        self.http_shed[reason] = self.http_shed.get(reason, 0) + 1

    def note_draining(self) -> None:
        self.draining = True
