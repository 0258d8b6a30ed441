"""The two C libraries' search walks (agent.resolvers), as their sources define them: glibc
resolv/res_query.c `__res_context_search`, musl src/network/lookup_name.c
`name_from_dns_search` and resolvconf.c. The real libraries are compared with this model in
tests/integration/test_libc_resolvers.py."""

from __future__ import annotations

from collections.abc import Mapping

from agent import resolvers
from agent.resolvers import Step

Z = "cluster.local"
SEARCH = (f"shop.svc.{Z}", f"svc.{Z}", Z, "corp.example")
GLIBC, MUSL = 0, 1


def walk(name: str, ndots: int = 5, search: tuple[str, ...] = SEARCH, zone: str = Z,
         **kw: bool) -> resolvers.Walk:
    return resolvers.plan(name, search, ndots, zone, resolvers.FLAVOURS, **kw)


def run(w: resolvers.Walk, got: Mapping[str, str]) -> dict[int, Step]:
    """Drive the walk as the engine does: ask, record, ask what comes next. `got` maps a name
    to its status (NXDOMAIN when absent); an answer carries one record."""
    steps: dict[int, Step] = {}
    positions, i = w.start(), w.first()
    while i >= 0:
        status = got.get(w.candidates[i], resolvers.NXDOMAIN)
        steps[i] = Step(status, ("198.18.0.1",) if status == resolvers.ANSWER else ())
        i = w.step(positions, i, status)
    return steps


def asked(w: resolvers.Walk, steps: Mapping[int, Step]) -> list[str]:
    return [w.candidates[i] for i in sorted(steps)]


def test_a_short_name_is_searched_by_both_and_the_tail_outside_the_zone_is_not_asked() -> None:
    w = walk("web")
    assert w.candidates == (f"web.shop.svc.{Z}.", f"web.svc.{Z}.", f"web.{Z}.")
    assert w.orders[GLIBC] == w.orders[MUSL] == (0, 1, 2)
    steps = run(w, {})
    assert [resolvers.outcome(w, f, steps).status for f in (GLIBC, MUSL)] == ["nxdomain", "nxdomain"]


def test_with_dots_at_least_ndots_musl_asks_the_name_as_given_only() -> None:
    w = walk("web.shop", ndots=1)
    assert w.candidates[0] == "web.shop."  # glibc's first try, and musl's only one
    assert [w.candidates[i] for i in w.orders[MUSL]] == ["web.shop."]
    assert "ndots 1" in w.notes[MUSL] and not w.notes[GLIBC]
    steps = run(w, {f"web.shop.svc.{Z}.": resolvers.ANSWER})
    glibc, musl = (resolvers.outcome(w, f, steps) for f in (GLIBC, MUSL))
    assert glibc.status == "answer" and glibc.qname == f"web.shop.svc.{Z}."
    assert musl.status == "nxdomain" and musl.qname == "web.shop." and "does not search" in musl.detail


def test_glibc_goes_on_past_nodata_and_servfail_musl_stops_there() -> None:
    w = walk("web.shop")
    first, target = f"web.shop.shop.svc.{Z}.", f"web.shop.svc.{Z}."
    for status in (resolvers.NODATA, resolvers.SERVFAIL):
        steps = run(w, {first: status, target: resolvers.ANSWER})
        assert asked(w, steps) == [first, target]  # (web.shop + svc.<zone> is the Service's name)
        assert resolvers.outcome(w, GLIBC, steps).status == "answer"
        assert resolvers.outcome(w, MUSL, steps).status == status


def test_glibc_reports_nodata_over_a_later_nxdomain_but_not_servfail() -> None:
    w = walk("web", zone="")  # every name judged
    steps = run(w, {f"web.svc.{Z}.": resolvers.SERVFAIL, f"web.{Z}.": resolvers.NODATA})
    assert resolvers.outcome(w, GLIBC, steps).status == "nodata"
    assert resolvers.outcome(w, MUSL, steps).status == "servfail"
    # glibc 2.36 returns EAI_NONAME after SERVFAIL then NXDOMAIN (its source keeps a SERVFAIL
    # count, but getaddrinfo ends with the last name's answer): the real library decides.
    steps = run(w, {f"web.svc.{Z}.": resolvers.SERVFAIL})
    assert resolvers.outcome(w, GLIBC, steps).status == "nxdomain"


def test_a_timeout_ends_glibcs_search_but_it_still_tries_the_name_as_given() -> None:
    w = walk("web", zone="")
    steps = run(w, {f"web.shop.svc.{Z}.": resolvers.TIMEOUT, "web.": resolvers.ANSWER})
    assert asked(w, steps) == [f"web.shop.svc.{Z}.", "web."]
    assert resolvers.outcome(w, GLIBC, steps).status == "answer"
    assert resolvers.outcome(w, MUSL, steps).status == "timeout"


def test_musl_ignores_a_search_line_of_255_characters_or_more() -> None:
    long_domains = tuple(f"d{i}.{'x' * 40}.example" for i in range(6))
    search = (f"shop.svc.{Z}", f"svc.{Z}", Z, *long_domains)
    line = "search " + " ".join(search)
    assert len(line) > resolvers.MUSL_LINE_MAX
    w = walk("web", search=search)
    assert [w.candidates[i] for i in w.orders[MUSL]] == ["web."]
    assert "search line" in w.notes[MUSL]
    steps = run(w, {f"web.shop.svc.{Z}.": resolvers.ANSWER})
    assert resolvers.outcome(w, GLIBC, steps).status == "answer"
    assert resolvers.outcome(w, MUSL, steps).status == "nxdomain"
    # A line just short enough is read.
    short = (f"shop.svc.{Z}", f"svc.{Z}", Z)
    assert len("search " + " ".join(short)) <= resolvers.MUSL_LINE_MAX
    read = walk("web", search=short)
    assert read.candidates[read.orders[MUSL][0]] == f"web.shop.svc.{Z}."


def test_musl_skips_a_search_name_too_long_for_its_buffer_glibc_stops_searching_there() -> None:
    name = "a" * 60 + "." + "b" * 60 + "." + "c" * 60  # 182 characters
    long_entry = "e" * 63 + "." + Z  # name + entry > 255
    w = walk(name, search=(long_entry, Z), zone="")
    too_long = f"{name}.{long_entry}."
    assert too_long in w.candidates and w.candidates.index(too_long) not in w.orders[MUSL]
    steps = run(w, {too_long: resolvers.UNASKABLE, f"{name}.{Z}.": resolvers.ANSWER})
    assert resolvers.outcome(w, MUSL, steps).status == "answer"
    glibc = resolvers.outcome(w, GLIBC, steps)  # NO_RECOVERY ends the search; the bare name is tried
    assert glibc.status == "nxdomain" and glibc.qname == f"{name}."


def test_outside_the_zone_only_an_answer_counts() -> None:
    w = walk("web.shop", ndots=1)  # glibc asks web.shop. (outside the zone) first
    steps = run(w, {"web.shop.": resolvers.SERVFAIL, f"web.shop.svc.{Z}.": resolvers.ANSWER})
    glibc = resolvers.outcome(w, GLIBC, steps)
    assert glibc.status == "answer" and "web.shop. got SERVFAIL" in glibc.detail
    steps = run(w, {"web.shop.": resolvers.ANSWER})  # an upstream record for the bare name
    assert resolvers.outcome(w, GLIBC, steps).qname == "web.shop."  # what the application gets


def test_zone_only_asks_the_cluster_names_and_a_flavour_with_none_is_not_judged() -> None:
    w = walk("db.shop", ndots=1, zone_only=True)
    assert all(c.endswith(f".{Z}.") for c in w.candidates) and w.orders[MUSL] == ()
    steps = run(w, {})
    assert resolvers.outcome(w, GLIBC, steps).status == "nxdomain"
    assert resolvers.outcome(w, MUSL, steps).status == ""  # nothing cluster DNS answers
    # An expected NODATA: glibc goes on through the zone, musl stops at once; both say NODATA.
    w = walk("db", zone_only=True)
    steps = run(w, {f"db.shop.svc.{Z}.": resolvers.NODATA})
    assert len(steps) == 3
    assert [resolvers.outcome(w, f, steps).status for f in (GLIBC, MUSL)] == ["nodata", "nodata"]


def test_one_flavour_alone_walks_its_own_names() -> None:
    w = resolvers.plan("web", SEARCH, 5, Z, ("musl",))
    steps = run(w, {f"web.shop.svc.{Z}.": resolvers.NODATA})
    assert len(steps) == 1 and resolvers.outcome(w, 0, steps).status == "nodata"


def test_an_absolute_name_is_asked_alone() -> None:
    w = walk(f"web.shop.svc.{Z}.")
    assert w.candidates == (f"web.shop.svc.{Z}.",) and w.orders == ((0,), (0,))
