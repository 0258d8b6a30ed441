"""Which agents probe which Service: rendezvous (highest-random-weight) hashing (pure).

Every agent scores every (agent, Service) pair with the same hash; a Service belongs to
the `replicas` agents with the highest scores. All agents compute the same answer from the
same peer list without talking to each other, and when an agent joins or leaves only the
Services it gains or held move.

Deciding ownership does not need every peer's score: an agent owns a Service unless
`replicas` peers beat its own score, so it stops scanning as soon as that many have. On
average that is about `replicas × (1 + ln(peers / replicas))` scores per Service instead
of one per peer, which keeps a 5,000-node cluster's computation small on every node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def score(agent: str, service_key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{agent}\x00{service_key}".encode(), digest_size=8).digest(), "big")


def service_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def owners(key: str, peers: Iterable[str], replicas: int) -> list[str]:
    """The `replicas` owners of `key`, best first (the full computation, for tests/tools)."""
    ranked = sorted(set(peers), key=lambda p: (score(p, key), p), reverse=True)
    return ranked[:replicas]


def owns(me: str, key: str, peers: Sequence[str], replicas: int) -> bool:
    """Whether `me` is among the owners of `key`; `peers` must not contain `me`."""
    if replicas <= 0 or len(peers) < replicas:
        return True
    mine = (score(me, key), me)
    beaten_by = 0
    for peer in peers:
        if (score(peer, key), peer) > mine:
            beaten_by += 1
            if beaten_by >= replicas:
                return False
    return True


def my_share(me: str, keys: Iterable[str], peers: Iterable[str], replicas: int) -> set[str]:
    others = sorted(set(peers) - {me})
    return {k for k in keys if owns(me, k, others, replicas)}
