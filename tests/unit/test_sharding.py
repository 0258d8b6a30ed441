"""Rendezvous sharding: deterministic, balanced, minimal reshuffling, cheap ownership test."""

from __future__ import annotations

import random
import statistics

import pytest

from agent.targeting import sharding

SERVICES = [sharding.service_key(f"ns{i % 40}", f"svc{i}") for i in range(3000)]


def agents(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return sorted({f"198.19.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(n * 2)})[:n]


def assignment(peers: list[str], replicas: int) -> dict[str, set[str]]:
    return {p: sharding.my_share(p, SERVICES, peers, replicas) for p in peers}


@pytest.mark.parametrize("replicas", [1, 3])
def test_every_service_gets_exactly_k_owners_and_agents_agree(replicas: int) -> None:
    peers = agents(40)
    shares = assignment(peers, replicas)
    for key in SERVICES:
        holders = {p for p, share in shares.items() if key in share}
        assert holders == set(sharding.owners(key, peers, replicas)), key
        assert len(holders) == replicas


def test_deterministic_whatever_the_peer_order() -> None:
    peers = agents(25)
    shuffled = peers[:]
    random.Random(3).shuffle(shuffled)
    me = peers[7]
    assert sharding.my_share(me, SERVICES, peers, 3) == sharding.my_share(me, SERVICES, shuffled, 3)


def test_balanced_across_agents() -> None:
    peers = agents(50)
    loads = [len(s) for s in assignment(peers, 3).values()]
    mean = len(SERVICES) * 3 / len(peers)
    assert statistics.mean(loads) == pytest.approx(mean)
    # Binomial spread: no agent far from its fair share (about 4 standard deviations).
    assert max(loads) < mean * 1.4 and min(loads) > mean * 0.6


def test_minimal_reshuffling_when_an_agent_joins_or_leaves() -> None:
    peers = agents(30)
    before = assignment(peers, 3)
    newcomer = "198.18.250.250"
    after = assignment([*peers, newcomer], 3)
    moved = sum(len(before[p] - after[p]) for p in peers)
    # Only what the newcomer takes moves, and it takes about its fair share.
    assert moved == len(after[newcomer])
    assert len(after[newcomer]) == pytest.approx(len(SERVICES) * 3 / 31, rel=0.35)
    leaver = peers[4]
    remaining = [p for p in peers if p != leaver]
    gone = assignment(remaining, 3)
    for p in remaining:
        assert before[p] <= gone[p]  # nobody loses anything when a peer leaves
    assert sum(len(gone[p] - before[p]) for p in remaining) == len(before[leaver])


def test_fewer_agents_than_replicas_means_everyone_probes_everything() -> None:
    peers = agents(2)
    assert sharding.my_share(peers[0], SERVICES, peers, 3) == set(SERVICES)


def test_ownership_test_scans_few_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = sharding.score

    def counting(agent: str, key: str) -> int:
        nonlocal calls
        calls += 1
        return real(agent, key)

    monkeypatch.setattr(sharding, "score", counting)
    peers = agents(2000)
    me, others = peers[0], peers[1:]
    keys = SERVICES[:500]
    sharding.my_share(me, keys, peers, 3)
    per_key = calls / len(keys)
    # About replicas * (1 + ln(peers / replicas)) ~ 23, far below one per peer (2000).
    assert per_key < 100
    assert len(others) == 1999
