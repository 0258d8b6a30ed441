"""svcprobe's Kubernetes test bed (docs/testbed.md). Start at bed.py: `TestBed` and the command
line, with a map of the other modules in its docstring.

The names below can also be imported from this package; they are loaded on first use, so that
`python3 -m tests.testbed.bed` does not import bed.py twice.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "CLUSTER_DOMAIN",
    "KUBERNETES_IP",
    "KUBE_DNS_IP",
    "Backend",
    "Node",
    "TestBed",
    "TestBedError",
    "TestBedUnavailable",
    "unavailable_reason",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tests.testbed import bed

        return getattr(bed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
