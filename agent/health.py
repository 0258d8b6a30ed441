"""The agent's own state, reported by /metrics, /readyz and the JSON API."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Health:
    """The agent's own state that /metrics, /readyz and the JSON API report."""

    inventory_services: int = 0
    inventory_endpoints: int = 0
    inventory_synced: bool = False  # the first full inventory has been loaded
    kube_synced: bool = False  # Kubernetes discovery only
    kube_discovery: bool = False  # the inventory comes from the API (not a static file)
    reloads: dict[str, int] = dataclasses.field(default_factory=lambda: {"ok": 0, "error": 0})
    skipped: dict[str, int] = dataclasses.field(default_factory=lambda: {"unsupported_kind": 0, "malformed": 0})
    watch_restarts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    relists: dict[str, int] = dataclasses.field(default_factory=dict)
    targets: dict[str, int] = dataclasses.field(default_factory=lambda: {"dns": 0, "tcp": 0, "not_probed": 0})
    last_inventory_error: str = ""
    draining: bool = False
    shard_peers: int = 0  # agents found (this one included)
    shard_selected: int = 0  # Services selected cluster-wide, canaries excluded
    shard_owned: int = 0  # of those, probed by this agent
    shard_canaries: int = 0
    expected_cluster_qps: float = 0.0  # DNS queries/s all agents together send, by the formula
    # HTTP connections the server closed to stay within its connection limit (agent/server.py)
    http_shed: dict[str, int] = dataclasses.field(default_factory=lambda: {"evicted": 0, "busy": 0})
