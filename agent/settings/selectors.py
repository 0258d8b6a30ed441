"""Kubernetes label selectors and `NAMESPACE/NAME` references, as settings spell them.

Parsed at start-up by `agent.settings.load`, so a bad selector stops the agent with the key
named; `agent.targeting.selection` matches Services against the parsed requirements.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

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
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
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
