"""Which Services an agent probes at all, and which checks (pure).

Namespace include/exclude lists, a Kubernetes-style label selector, and per-Service
annotations: `svcprobe.io/ignore: "true"` opts a Service out entirely,
`svcprobe.io/skip-dns` / `svcprobe.io/skip-tcp` drop one kind of check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from agent import model
from agent.settings.selectors import Requirement

IGNORE = "svcprobe.io/ignore"
SKIP_DNS = "svcprobe.io/skip-dns"
SKIP_TCP = "svcprobe.io/skip-tcp"

def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1")


@dataclasses.dataclass(frozen=True)
class Selection:
    namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    selector: tuple[Requirement, ...] = ()
    services: frozenset[tuple[str, str]] = frozenset()  # only these (empty: any)

    def selects(self, svc: model.Service) -> bool:
        if _truthy(svc.annotations.get(IGNORE)):
            return False
        if self.services and svc.key not in self.services:
            return False
        if self.namespaces and svc.namespace not in self.namespaces:
            return False
        if svc.namespace in self.exclude_namespaces:
            return False
        return all(r.matches(svc.labels) for r in self.selector)

    def select(self, services: Iterable[model.Service]) -> list[model.Service]:
        return [s for s in services if self.selects(s)]


def skip_dns(svc: model.Service) -> bool:
    return _truthy(svc.annotations.get(SKIP_DNS))


def skip_tcp(svc: model.Service) -> bool:
    return _truthy(svc.annotations.get(SKIP_TCP))
