"""How the C libraries' stub resolvers walk a name: which names they ask, when they stop, and
what an application finally gets (pure; no I/O).

Pods run on glibc (Debian, Ubuntu, RHEL images) or musl (Alpine, many distroless images), and
the two walk a relative name differently (glibc resolv/res_query.c `__res_context_search`,
musl src/network/lookup_name.c `name_from_dns_search` and resolvconf.c):

| | glibc | musl |
|---|---|---|
| name with dots >= ndots | as-is first, then the search list | as-is only: no search list |
| NXDOMAIN | next name | next name |
| NODATA | next name; NODATA at the end if nothing answers | stops: NODATA |
| SERVFAIL | next name; the last name's outcome if nothing answers | stops: SERVFAIL |
| timeout, error | stops searching; still tries the name as-is last | stops |
| a `search` line of 255+ characters | used | ignored whole (256-byte line buffer) |
| a search candidate too long to ask | stops searching (NO_RECOVERY) | skipped |

A `Walk` is the union of the names the configured flavours ask, in asking order, so that one
lookup answers for all of them ("query once, judge per flavour"); `outcome` replays one
flavour's rules over what each name got.

Cluster DNS is judged on names in the cluster zone only. A name outside it (the node's own
search domains, the bare name) is answered by the upstream resolver, so what it gets is not
held against a Service — except an answer, which is what the application would get, and the
case of a flavour that asks no cluster-zone name at all (musl with dots >= ndots), where the
application gets only what the outside names get.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

GLIBC, MUSL = "glibc", "musl"
FLAVOURS = (GLIBC, MUSL)
MUSL_LINE_MAX = 254  # musl reads resolv.conf with fgets into 256 bytes: a longer line is skipped
NAME_MAX = 253  # longest name (without the final dot) that fits a DNS message

# Statuses a lookup step can end with (the values of agent.probes.dns.resolution.Status) and
# UNASKABLE for a candidate that cannot be put into a query.
ANSWER, NODATA, NXDOMAIN, SERVFAIL, REFUSED, TIMEOUT, ERROR = (
    "answer", "nodata", "nxdomain", "servfail", "refused", "timeout", "error")
UNASKABLE = "unaskable"


@dataclasses.dataclass(frozen=True, slots=True)
class Walk:
    """The names one lookup asks for every configured flavour, in asking order."""

    candidates: tuple[str, ...]  # absolute names
    in_zone: tuple[bool, ...]  # per candidate: under the cluster zone (cluster DNS's to answer)
    flavours: tuple[str, ...]
    orders: tuple[tuple[int, ...], ...]  # per flavour: the candidates it asks, as indexes
    as_is_first: tuple[int, ...]  # per flavour: index of the as-is name glibc asks before searching, or -1
    as_is_last: tuple[int, ...]  # per flavour: index of the as-is name glibc asks after searching, or -1
    notes: tuple[str, ...]  # per flavour: why its walk is not the plain search walk ("" if it is)

    def first(self) -> int:
        return min((o[0] for o in self.orders if o), default=-1)

    def start(self) -> list[int]:
        """Per flavour, the position in its order it is at (-1: done)."""
        return [0 if o else -1 for o in self.orders]

    def step(self, positions: list[int], index: int, status: str) -> int:
        """Candidate `index` ended with `status`: move every flavour that asked it on (in
        place) and return the next candidate to ask, or -1 when every flavour is done."""
        for f, pos in enumerate(positions):
            order = self.orders[f]
            if pos < 0 or order[pos] != index:
                continue
            positions[f] = _next_position(self, f, pos, status)
        return min((self.orders[f][p] for f, p in enumerate(positions) if p >= 0), default=-1)


def _next_position(walk: Walk, f: int, pos: int, status: str) -> int:
    order = walk.orders[f]
    more = pos + 1 if pos + 1 < len(order) else -1
    if status == ANSWER:
        return -1
    if walk.flavours[f] == MUSL:
        return more if status in (NXDOMAIN, UNASKABLE) else -1
    # glibc
    index = order[pos]
    last = walk.as_is_last[f]
    if index == walk.as_is_first[f]:
        return more  # the as-is name asked first: anything but an answer goes on to the search list
    if status in (NXDOMAIN, NODATA, SERVFAIL):
        return more
    if status == REFUSED or index == last:
        return -1
    # a timeout, an error or an unaskable name ends the search; the as-is name is still tried
    return order.index(last) if last >= 0 and last in order else -1


def _fits_musl(name: str, entry: str) -> bool:
    # musl copies "name.entry" into a 256-byte buffer only when `len(entry) < 256 - len(name) - 1`
    return len(entry) < 256 - len(name) - 1


def flavour_names(flavour: str, name: str, search: Sequence[str], ndots: int) -> tuple[list[str], str]:
    """The absolute names `flavour` asks for `name`, in order, and a note when its walk is not
    the plain search walk."""
    if name.endswith("."):
        return [name], ""
    dots = name.count(".")
    as_is = f"{name}."
    searched = [f"{name}.{suffix}." for suffix in search]
    if flavour == MUSL:
        line = "search " + " ".join(search)
        if dots >= ndots:
            return [as_is], (f"musl does not search {name}: {dots} dot{'s' * (dots != 1)} >= ndots {ndots}, "
                             "so it asks the name as given only")
        if search and len(line) > MUSL_LINE_MAX:
            return [as_is], (f"musl ignores the pod's search line ({len(line)} characters; it reads "
                             f"lines of at most {MUSL_LINE_MAX}), so it asks {name} as given only")
        kept = [c for c, suffix in zip(searched, search, strict=True) if _fits_musl(name, suffix)]
        return [*kept, as_is], ""
    if dots >= ndots:
        return [as_is, *searched], ""
    return [*searched, as_is], ""


def in_cluster_zone(candidate: str, zone: str) -> bool:
    return not zone or candidate.endswith(f".{zone}.") or candidate == f"{zone}."


def plan(name: str, search: Sequence[str], ndots: int, zone: str,
         flavours: Sequence[str] = FLAVOURS, *, zone_only: bool = False) -> Walk:
    """The walk of `name` for the given flavours. `zone_only`: only the names in the cluster
    zone are asked (an expected NODATA or NXDOMAIN is cluster DNS's to give; nothing outside
    the zone can change that verdict), and a flavour that asks none is not asked at all.

    Walks are immutable and the same every sweep: the prober asks them for each lookup and the
    planner for each check's cost, so they are kept (the most recent PLAN_CACHE_MAX)."""
    return _plan(name, tuple(search), ndots, zone, tuple(flavours), zone_only)


PLAN_CACHE_MAX = 100_000


@functools.lru_cache(maxsize=PLAN_CACHE_MAX)
def _plan(name: str, search: tuple[str, ...], ndots: int, zone: str, flavours: tuple[str, ...],
          zone_only: bool) -> Walk:
    per_flavour = [flavour_names(fl, name, search, ndots) for fl in flavours]
    union: list[str] = []
    for names, _ in per_flavour:  # the flavours' orders agree, so a merge keeps both
        at = 0
        for n in names:
            if n in union:
                at = union.index(n) + 1
            else:
                union.insert(at, n)
                at += 1
    if zone and not name.endswith("."):
        needed = _needed(union, per_flavour, zone, zone_only)
        union = [n for n in union if n in needed]
    index = {n: i for i, n in enumerate(union)}
    orders = tuple(tuple(index[n] for n in names if n in index) for names, _ in per_flavour)
    as_is = f"{name}." if not name.endswith(".") else ""
    glibc_as_is = index.get(as_is, -1)
    firsts = tuple(glibc_as_is if fl == GLIBC and name.count(".") >= ndots else -1 for fl in flavours)
    lasts = tuple(glibc_as_is if fl == GLIBC and name.count(".") < ndots else -1 for fl in flavours)
    return Walk(tuple(union), tuple(in_cluster_zone(n, zone) for n in union), tuple(flavours),
                orders, firsts, lasts, tuple(note for _, note in per_flavour))


def _needed(union: list[str], per_flavour: list[tuple[list[str], str]], zone: str, zone_only: bool) -> set[str]:
    """Which names are worth asking: the cluster-zone ones; for a positive expectation also the
    outside names before them (an application pays for them, and an answer there is what it
    gets), and every name of a flavour that asks no cluster-zone name at all."""
    keep = {n for n in union if in_cluster_zone(n, zone)}
    if zone_only:
        return keep
    last = max((i for i, n in enumerate(union) if n in keep), default=-1)
    keep.update(union[: last + 1])
    for names, _ in per_flavour:
        if not any(in_cluster_zone(n, zone) for n in names):
            keep.update(names)
    return keep


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """What one candidate got."""

    status: str
    records: tuple[str, ...] = ()
    detail: str = ""
    server: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What an application on one flavour gets, judged on the names that count."""

    status: str  # answer, nodata, nxdomain, servfail, refused, timeout, error; "" = nothing to judge
    records: tuple[str, ...]
    qname: str  # the name that gave it
    detail: str
    server: str


def outcome(walk: Walk, f: int, steps: Mapping[int, Step]) -> Outcome:
    """Replay flavour `f`'s rules over the steps of the names it asked. Names outside the
    cluster zone count only when they answer, or when the flavour asks nothing else."""
    order = [i for i in walk.orders[f] if i in steps]
    outside = [i for i in order if not walk.in_zone[i]]
    judged = order if len(outside) == len(order) else [
        i for i in order if walk.in_zone[i] or steps[i].status == ANSWER]
    notes = [walk.notes[f]] if walk.notes[f] else []
    notes += [f"{walk.candidates[i]} got {steps[i].status.upper()} (outside the cluster zone: the upstream "
              "resolver's, not judged)" for i in outside if i not in judged and steps[i].status != NXDOMAIN]
    if not judged:
        return Outcome("", (), "", "; ".join(notes), "")
    if walk.flavours[f] == MUSL:
        return _musl(walk, judged, steps, notes)
    return _glibc(walk, f, judged, steps, notes)


def _musl(walk: Walk, judged: list[int], steps: Mapping[int, Step], notes: list[str]) -> Outcome:
    for i in judged:
        st = steps[i]
        if st.status not in (NXDOMAIN, UNASKABLE):
            return _made(walk, i, st, st.status, notes)
    i = judged[-1]
    return _made(walk, i, steps[i], NXDOMAIN if steps[i].status == UNASKABLE else steps[i].status, notes)


def _glibc(walk: Walk, f: int, judged: list[int], steps: Mapping[int, Step], notes: list[str]) -> Outcome:
    last = walk.as_is_last[f]
    saved = nodata = -1
    final = judged[-1]
    searching = True
    for i in judged:
        if not searching and i != last:
            continue  # the search ended: only the as-is name is still tried
        st = steps[i].status
        final = i
        if st == ANSWER or st == REFUSED:
            return _made(walk, i, steps[i], st, notes)
        if i == walk.as_is_first[f]:
            saved = i
        elif st == NODATA:
            nodata = i if nodata < 0 else nodata
        elif st not in (NXDOMAIN, SERVFAIL) and i != last:  # timeout, error, unaskable: the search ends here
            searching = False
    # glibc 2.36 (measured, tests/integration/test_libc_resolvers.py): NODATA anywhere wins, a
    # SERVFAIL does not (getaddrinfo then says what the last name got).
    for i in (saved, nodata):
        if i >= 0:
            return _made(walk, i, steps[i], steps[i].status, notes)
    end = steps[final]
    return _made(walk, final, end, ERROR if end.status == UNASKABLE else end.status, notes)


def _made(walk: Walk, i: int, st: Step, status: str, notes: list[str]) -> Outcome:
    detail = "; ".join([d for d in (st.detail,) if d] + notes)
    return Outcome(status, st.records if status == ANSWER else (), walk.candidates[i], detail, st.server)
