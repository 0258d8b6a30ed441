"""svcprobe's emulation of the glibc and musl search walks against the real libraries.

A seeded corpus: relative and absolute names, A and AAAA, under resolv.conf variants (search
lists in different orders, ndots 1, 2 and 5, a SERVFAIL domain early in the list, a search line
too long for musl, a domain that never answers), against one Knot server whose zones give each
candidate name a random fate (no such name, A only, AAAA only, both). For every query and each
library, svcprobe's single lookup (`agent.resolvers` walk through the real DNS engine) must
predict what that library's `getaddrinfo` returns: the same addresses, or the same failure
class. And its verdict on a check expecting the namespace's record must be `ok` exactly when
the library resolves the name to those addresses.

Everything is judged as a whole walk here (`zone=""`): the oracle is the libraries, which know
no cluster zone. Counts go to /tmp/svcprobe-resolver-oracle.md for the issue note.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from agent import resolvers
from agent.checks import DnsCheck, DnsExpectation, Expect
from agent.probes.dns import DnsEngine
from agent.probes.prober import Prober
from tests.support.forwarder import RecordingForwarder
from tests.support.knot import KnotServer, Record, zone_text
from tests.support.libc import FLAVOURS, LibcAnswer, resolv_conf_text, resolve, unavailable_reason, version

_UNAVAILABLE = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or ""),
]

SEED = int(os.environ.get("SVCPROBE_ORACLE_SEED", "20261207"))  # another seed: another corpus
Z = "cluster.local"
BROKEN = f"broken.{Z}"  # Knot: configured without a zone file, SERVFAIL
SLOW = f"slow.{Z}"  # the forwarder drops it: no answer
NAMES = ("web", "v4", "v6", "api", "web.shop", "v4.shop", "db.shop", "web.shop.svc", "db.shop.svc",
         "a.b.c", "x.corp")
DOMAINS = (f"shop.svc.{Z}", f"svc.{Z}", Z, "corp.example", "lab.example")
LONG_HOST = tuple(f"h{i}.{'x' * 50}.example" for i in range(4))  # makes the search line > 254


@dataclasses.dataclass(frozen=True)
class Config:
    label: str
    search: tuple[str, ...]
    ndots: int
    names: tuple[str, ...] = NAMES


CONFIGS = (
    Config("kubelet, ndots 5", (*DOMAINS[:3], "corp.example"), 5),
    Config("kubelet, ndots 2", (*DOMAINS[:3], "corp.example"), 2),
    Config("kubelet, ndots 1", DOMAINS[:3], 1),
    Config("host domains first", ("lab.example", "corp.example", *DOMAINS[:3]), 5),
    Config("SERVFAIL domain second", (DOMAINS[0], BROKEN, *DOMAINS[1:3]), 5),
    Config("SERVFAIL domain first, ndots 2", (BROKEN, *DOMAINS[:3]), 2),
    Config("search line over 254 characters", (*DOMAINS[:3], *LONG_HOST), 5),
    # Timeouts cost a second each (per library, per name): a few names only.
    Config("silent domain second", (DOMAINS[0], SLOW, *DOMAINS[1:3]), 5, ("web", "v4", "nope")),
)


def candidate_names(configs: Sequence[Config]) -> list[str]:
    out: set[str] = set()
    for cfg in configs:
        for name in cfg.names:
            out.add(f"{name}.")
            out.update(f"{name}.{d}." for d in cfg.search)
    return sorted(out)


def fates(seed: int) -> dict[str, tuple[str | None, str | None]]:
    """Each candidate name: (A address or None, AAAA address or None), at random."""
    rng = random.Random(seed)
    out: dict[str, tuple[str | None, str | None]] = {}
    for i, name in enumerate(candidate_names(CONFIGS)):
        if name.endswith((f".{BROKEN}.", f".{SLOW}.")):
            continue
        pick = rng.random()
        a = f"198.18.{i // 250}.{i % 250 + 1}" if pick < 0.45 else None
        aaaa = f"2001:db8::{i + 1:x}" if 0.3 < pick < 0.6 else None
        if a or aaaa:
            out[name] = (a, aaaa)
    return out


def zones(records: dict[str, tuple[str | None, str | None]]) -> dict[str, str]:
    inside: list[Record] = []
    outside: list[Record] = []
    for name, (a, aaaa) in records.items():
        where = inside if name.endswith(f".{Z}.") else outside
        where.extend(Record(name, t, v) for t, v in (("A", a), ("AAAA", aaaa)) if v)
    return {
        ".": zone_text(".", outside, mname="ns.root-servers.test.", rname="hostmaster.root-servers.test."),
        f"{Z}.": zone_text(f"{Z}.", inside),
    }


@pytest.fixture(scope="module")
def records() -> dict[str, tuple[str | None, str | None]]:
    return fates(SEED)


@pytest.fixture(scope="module")
def knot(records: dict[str, tuple[str | None, str | None]]) -> Iterator[KnotServer]:
    with KnotServer(zones(records), port=53, servfail_zones=[BROKEN + "."]) as server:
        yield server


@pytest.fixture(scope="module")
def forwarder(knot: KnotServer) -> Iterator[RecordingForwarder]:
    rng = random.Random()
    for _ in range(20):
        try:
            fwd = RecordingForwarder(f"127.55.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                                     knot.nameserver, drop=[SLOW + "."])
        except OSError:
            continue
        break
    else:
        pytest.fail("no free port 53 on 20 random 127.55.x.y addresses")
    yield fwd
    fwd.close()


def predicted(flavour: str, out: resolvers.Outcome) -> LibcAnswer:
    """What getaddrinfo returns for the outcome svcprobe predicts."""
    if out.status == resolvers.ANSWER:
        return LibcAnswer("OK", frozenset(str(ipaddress.ip_address(r)) for r in out.records))
    if out.status == resolvers.NXDOMAIN:
        return LibcAnswer("EAI_NONAME")
    if out.status == resolvers.NODATA:  # musl before 1.2.4 says EAI_NONAME (its source, and measured)
        old_musl = flavour == "musl" and tuple(int(p) for p in version("musl").split(".")[:3]) < (1, 2, 4)
        return LibcAnswer("EAI_NONAME" if old_musl else "EAI_NODATA")
    if out.status in (resolvers.SERVFAIL, resolvers.TIMEOUT):
        return LibcAnswer("EAI_AGAIN")
    return LibcAnswer(f"? {out.status}")


def expected_answer(name: str, qtype: str, records: dict[str, tuple[str | None, str | None]]) -> DnsExpectation:
    """What a check expects of a relative name: the records of that name in the namespace (as a
    Service's would be); of an absolute name, its own. NODATA when only the other type exists."""
    owner = name if name.endswith(".") else f"{name}.{DOMAINS[0]}."
    a, aaaa = records.get(owner, (None, None))
    value = a if qtype == "A" else aaaa
    if value:
        return DnsExpectation(Expect.ANSWER, frozenset({value}))
    return DnsExpectation(Expect.NODATA if (a or aaaa) else Expect.NXDOMAIN)


def resolves_as_expected(flavour: str, got: LibcAnswer, expect: DnsExpectation) -> bool:
    if expect.kind is Expect.ANSWER:
        return got.ok and got.addresses == frozenset(expect.records)
    status = resolvers.NODATA if expect.kind is Expect.NODATA else resolvers.NXDOMAIN
    return got == predicted(flavour, resolvers.Outcome(status, (), "", "", ""))


async def test_svcprobe_predicts_what_glibc_and_musl_getaddrinfo_return(
        forwarder: RecordingForwarder, records: dict[str, tuple[str | None, str | None]]) -> None:
    server = (forwarder.address, 53)
    engine = DnsEngine(timeout=1.0, attempts=1, sockets=2)
    prober = Prober(engine, tcp_timeout=1.0)
    mismatches: list[str] = []
    counts = {f: {"queries": 0, "outcome": 0, "verdict": 0, "blind": 0} for f in FLAVOURS}
    by_status: dict[tuple[str, str], int] = {}
    differ = 0
    rows = []
    try:
        for cfg in CONFIGS:
            conf = resolv_conf_text(forwarder.address, search=cfg.search, ndots=cfg.ndots)
            queries = [(q, n) for n in cfg.names for q in ("A", "AAAA")]
            queries += [("A", f"{cfg.names[0]}.{DOMAINS[0]}.")]  # an absolute name
            real = {f: resolve(f, queries, conf, timeout=120) for f in FLAVOURS}
            for k, (qtype, name) in enumerate(queries):
                walk = resolvers.plan(name, cfg.search, cfg.ndots, "", FLAVOURS)
                lookup = await engine.lookup(walk if not name.endswith(".") else (name,), qtype, [server])
                outs = ([resolvers.outcome(walk, f, lookup.steps) for f in range(len(FLAVOURS))]
                        if lookup.steps is not None else
                        [resolvers.Outcome(lookup.status, tuple(lookup.records), name, "", "")] * len(FLAVOURS))
                differ += outs[0].status != outs[1].status or outs[0].records != outs[1].records
                for f, flavour in enumerate(FLAVOURS):
                    got, want = real[flavour][k], predicted(flavour, outs[f])
                    counts[flavour]["queries"] += 1
                    by_status[(flavour, outs[f].status)] = by_status.get((flavour, outs[f].status), 0) + 1
                    if got == want:
                        counts[flavour]["outcome"] += 1
                    else:
                        mismatches.append(f"{cfg.label}: {flavour} {qtype} {name}: libc {got.code} "
                                          f"{sorted(got.addresses)}, svcprobe predicts {want.code} "
                                          f"{sorted(want.addresses)} ({outs[f].detail})")
                    # The verdict of a check on this one library: ok exactly when the library
                    # resolves the name to what the API says.
                    expect = expected_answer(name, qtype, records)
                    check = DnsCheck("shop", name.split(".")[0], "short", qtype, "resolver", name, cfg.search,
                                     cfg.ndots, (server,), expect, resolvers=(flavour,))
                    result = (await prober.run(check)).result
                    verdict = result == "ok"
                    if (expect.kind is not Expect.ANSWER and got.code == "EAI_NONAME"
                            and predicted("musl", resolvers.Outcome(resolvers.NODATA, (), "", "", "")) == got
                            and flavour == "musl" and result in ("nodata", "nxdomain")):
                        counts[flavour]["blind"] += 1  # musl < 1.2.4 says EAI_NONAME for both
                    elif verdict == resolves_as_expected(flavour, got, expect):
                        counts[flavour]["verdict"] += 1
                    else:
                        mismatches.append(f"{cfg.label}: {flavour} {qtype} {name}: check verdict "
                                          f"{'ok' if verdict else 'failing'}, libc {got.code} {sorted(got.addresses)}")
            rows.append(f"| {cfg.label} | {' '.join(cfg.search)} | {cfg.ndots} | {len(queries)} |")
    finally:
        await engine.close()
    report = ["# Resolver oracle: svcprobe's walk emulation vs real getaddrinfo", "",
              f"glibc {version('glibc')}, musl {version('musl')}; seed {SEED}; {len(records)} names with records.", "",
              "| resolv.conf | search | ndots | queries |", "|---|---|---|---|", *rows, "",
              "| library | queries | outcome agrees | check verdict agrees | verdict not observable |",
              "|---|---|---|---|---|",
              *(f"| {f} | {c['queries']} | {c['outcome']} | {c['verdict']} | {c['blind']} |"
                for f, c in counts.items()), "",
              "(Not observable: an expected NODATA or NXDOMAIN, where musl before 1.2.4 returns "
              "EAI_NONAME for both, so the library cannot tell whether svcprobe's stricter verdict is right.)", "",
              f"Queries where glibc and musl get different results: {differ}.", "",
              "Outcomes: " + ", ".join(f"{f} {s or 'none'} {n}" for (f, s), n in sorted(by_status.items())), ""]
    Path("/tmp/svcprobe-resolver-oracle.md").write_text("\n".join(report + mismatches) + "\n", encoding="utf-8")
    assert not mismatches, "\n".join(mismatches[:40])
    assert all(c["outcome"] == c["queries"] == c["verdict"] + c["blind"] for c in counts.values())
    assert differ >= 10, "the corpus must make the two libraries disagree, or it tests nothing"
