"""Which Services an agent probes at all, and which checks (pure).

Namespace include/exclude lists, a Kubernetes-style label selector, and per-Service
annotations: `svcprobe.io/ignore: "true"` opts a Service out entirely,
`svcprobe.io/skip-dns` / `svcprobe.io/skip-tcp` drop one kind of check.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from agent import model

IGNORE = "svcprobe.io/ignore"
SKIP_DNS = "svcprobe.io/skip-dns"
SKIP_TCP = "svcprobe.io/skip-tcp"

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


class SelectorError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # notin: also true when absent


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Equality (`k=v`, `k==v`, `k!=v`), set (`k in (a,b)`, `k notin (a)`) and existence
    (`k`, `!k`) requirements, comma-separated; all must hold. Empty selects everything."""
    if not text.strip():
        return ()
    reqs = []
    for part in _split(text):
        if not part.strip():
            raise SelectorError(f"empty requirement in label selector {text!r}")
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
            if not values:
                raise SelectorError(f"{part.strip()!r}: a set needs at least one value")
            reqs.append(Requirement(m.group(1), m.group(3), values))
        elif m := _EQ.match(part):
            op = "notin" if m.group(3) == "!=" else "in"
            reqs.append(Requirement(m.group(1), op, frozenset({m.group(4)})))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"{part.strip()!r} is not a label selector requirement")
    return tuple(reqs)


def parse_ref(text: str, what: str) -> tuple[str, str]:
    ns, sep, name = text.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise SelectorError(f"{what}: {text!r} is not NAMESPACE/NAME")
    return ns, name


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1")


@dataclasses.dataclass(frozen=True)
class Selection:
    namespaces: frozenset[str] = frozenset()
    exclude_namespaces: frozenset[str] = frozenset()
    selector: tuple[Requirement, ...] = ()

    def selects(self, svc: model.Service) -> bool:
        if _truthy(svc.annotations.get(IGNORE)):
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
