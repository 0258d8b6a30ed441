"""The real glibc and musl resolvers (tests/support/libc.py) behave as their sources say: the
facts svcprobe's emulation of the two search walks is compared against.

Every query goes to a Knot server on port 53 of a loopback address, through a small recording
forwarder (also on port 53 of a loopback address) that logs each name the libc asks, in order,
and drops the queries for names under ``slow.cluster.local.`` (a server that never answers).
Each case asserts both the ``getaddrinfo`` result and the exact names asked.

Zones (distinct addresses per candidate, so an answer says which candidate produced it):

- ``.`` (so every name outside the cluster zone gets a quick, authoritative NXDOMAIN):
  ``web.`` 198.18.0.99, ``api.ns.`` 198.18.0.97 and the two long names' absolute forms;
- ``cluster.local.``: ``web.ns.svc`` .10, ``web.svc`` .20, ``api.ns.svc`` .21, ``v4only.ns.svc``
  (A .11 only: AAAA is NODATA), ``v4only.svc`` (AAAA 2001:db8::11 only), two long names;
- ``broken.cluster.local.``: configured without a zone file, Knot answers SERVFAIL.

Sources: glibc resolv/res_query.c ``__res_context_search``; musl src/network/lookup_name.c
``name_from_dns_search``/``name_from_dns``, src/network/resolvconf.c, src/network/res_msend.c.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.forwarder import RecordingForwarder
from tests.support.knot import KnotServer, Record, zone_text
from tests.support.libc import (
    FLAVOURS,
    LibcAnswer,
    client_path,
    resolv_conf_text,
    resolve,
    unavailable_reason,
    version,
)

_UNAVAILABLE = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or ""),
]

SEARCH = ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
BROKEN = "broken.cluster.local"  # SERVFAIL
SLOW = "slow.cluster.local"  # never answered (the forwarder drops it)


def _long_name(length: int) -> str:
    """A name of ``length`` characters (no trailing dot), 63-character labels then the rest."""
    labels = []
    left = length
    for letter in "abcdefgh":
        take = min(63, left)
        labels.append(letter * take)
        left -= take + 1
        if left <= 0:
            break
    name = ".".join(labels)
    assert len(name) == length, (len(name), length)
    return name


# With search ns.svc.cluster.local (20 characters) first:
LONG_257 = _long_name(236)  # + ".ns.svc.cluster.local" = 257 characters: no DNS name can be that long
LONG_254 = _long_name(233)  # + ".ns.svc.cluster.local" = 254 characters: one over the 253 limit

ADDR = {
    "web.": "198.18.0.99",
    "api.ns.": "198.18.0.97",
    "web.ns.svc.cluster.local.": "198.18.0.10",
    "web.svc.cluster.local.": "198.18.0.20",
    "api.ns.svc.cluster.local.": "198.18.0.21",
    "v4only.ns.svc.cluster.local.": "198.18.0.11",
    "v4only.svc.cluster.local.": "2001:db8::11",
    f"{LONG_257}.cluster.local.": "198.18.0.40",
    f"{LONG_257}.": "198.18.0.41",
    f"{LONG_254}.cluster.local.": "198.18.0.42",
    f"{LONG_254}.": "198.18.0.43",
}


def _zones() -> dict[str, str]:
    root = [Record(name, "A", addr) for name, addr in ADDR.items() if not name.endswith("cluster.local.")]
    cluster = [
        Record(name, "AAAA" if ":" in addr else "A", addr)
        for name, addr in ADDR.items() if name.endswith("cluster.local.")
    ]
    return {
        ".": zone_text(".", root, mname="ns.root-servers.test.", rname="hostmaster.root-servers.test."),
        "cluster.local.": zone_text("cluster.local.", cluster),
    }


@pytest.fixture(scope="module")
def knot() -> Iterator[KnotServer]:
    with KnotServer(_zones(), port=53, servfail_zones=[BROKEN + "."]) as server:
        yield server


@pytest.fixture(scope="module")
def forwarder(knot: KnotServer) -> Iterator[RecordingForwarder]:
    for _ in range(20):
        address = f"127.54.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            fwd = RecordingForwarder(address, knot.nameserver, drop=[SLOW + "."])
        except OSError:
            continue
        break
    else:
        pytest.fail("no free port 53 on 20 random 127.54.x.y addresses")
    yield fwd
    fwd.close()


def conf(server: str, search: Sequence[str] = SEARCH, ndots: int = 5) -> str:
    return resolv_conf_text(server, search=search, ndots=ndots)


def ask(forwarder: RecordingForwarder, flavour: str, qtype: str, name: str,
        resolv_conf: str) -> tuple[LibcAnswer, list[str]]:
    """One query in its own process; the answer and the names the libc asked, in order."""
    forwarder.take()
    answer = resolve(flavour, [(qtype, name)], resolv_conf)[0]
    return answer, forwarder.names()


def ok(*addresses: str) -> LibcAnswer:
    return LibcAnswer("OK", frozenset(addresses))


def fail(code: str) -> LibcAnswer:
    return LibcAnswer(code, frozenset())


def musl_at_least(*wanted: int) -> bool:
    return tuple(int(part) for part in version("musl").split(".")[:3]) >= wanted


# --------------------------------------------------------------------------------------------
# The tooling itself


def test_clients_answer_many_queries_from_knot_on_port_53_and_see_no_hosts_file(knot: KnotServer) -> None:
    real = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf")}
    queries = [("A", "web"), ("A", "web.ns.svc.cluster.local."), ("AAAA", "v4only.svc.cluster.local."),
               ("A", "localhost"), ("A", "nope.")]
    for flavour in FLAVOURS:
        answers = resolve(flavour, queries, conf(knot.nameserver[0]))
        assert answers[:3] == [ok("198.18.0.10"), ok("198.18.0.10"), ok("2001:db8::11")], flavour
        # localhost is not in the (empty) hosts file: it goes to DNS, where it does not exist.
        assert answers[3:] == [fail("EAI_NONAME"), fail("EAI_NONAME")], flavour
    after = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in real}
    assert after == real, "the real /etc files must not change"


def test_knot_serves_on_port_53_and_fails_the_servfail_zone(knot: KnotServer) -> None:
    assert knot.nameserver[1] == 53
    assert knot.query(f"x.{BROKEN}.", "A").rcode() == dns.rcode.SERVFAIL
    assert knot.query("web.ns.svc.cluster.local.", "A").rcode() == dns.rcode.NOERROR
    assert knot.query("nope.", "A").rcode() == dns.rcode.NXDOMAIN


def test_the_resolv_conf_must_name_loopback_nameservers_only() -> None:
    with pytest.raises(ValueError, match=re.escape("127.0.0.0/8")):
        resolve("glibc", [("A", "web")], resolv_conf_text("10.0.0.10"))
    with pytest.raises(ValueError, match="no nameserver"):
        resolve("musl", [("A", "web")], "search cluster.local\n")
    with pytest.raises(ValueError, match="query type"):
        resolve("musl", [("MX", "web")], resolv_conf_text("127.0.0.1"))


def test_the_client_refuses_to_run_outside_its_sandbox() -> None:
    for flavour in FLAVOURS:
        res = subprocess.run([str(client_path(flavour))], input="4 web\n", capture_output=True, text=True,
                             timeout=10, env={"PATH": "/usr/bin:/bin"})
        assert res.returncode == 2 and res.stdout == "", (flavour, res)
        assert "tests/support/libc.py" in res.stderr


def test_versions_are_known() -> None:
    assert version("glibc")[0].isdigit() and version("musl")[0].isdigit()


# --------------------------------------------------------------------------------------------
# The search walk


def test_both_resolve_a_short_name_through_the_search_list(forwarder: RecordingForwarder) -> None:
    for flavour in FLAVOURS:
        assert ask(forwarder, flavour, "A", "web", conf(forwarder.address)) == (
            ok("198.18.0.10"), ["web.ns.svc.cluster.local."]), flavour
        # Absent everywhere: the whole list, then the name as it is.
        assert ask(forwarder, flavour, "A", "nope", conf(forwarder.address)) == (
            fail("EAI_NONAME"),
            ["nope.ns.svc.cluster.local.", "nope.svc.cluster.local.", "nope.cluster.local.", "nope."]), flavour


def test_a_name_with_ndots_dots_skips_the_search_list_on_musl_only(forwarder: RecordingForwarder) -> None:
    resolv = conf(forwarder.address, ndots=1)
    # musl: dots >= ndots means no search at all.
    assert ask(forwarder, "musl", "A", "web.ns", resolv) == (fail("EAI_NONAME"), ["web.ns."])
    # glibc: the name as it is first, then the search list.
    assert ask(forwarder, "glibc", "A", "web.ns", resolv) == (
        ok("198.18.0.10"), ["web.ns.", "web.ns.ns.svc.cluster.local.", "web.ns.svc.cluster.local."])


def test_as_is_first_when_dots_reach_ndots_search_first_below(forwarder: RecordingForwarder) -> None:
    for flavour in FLAVOURS:
        assert ask(forwarder, flavour, "A", "api.ns", conf(forwarder.address, ndots=1)) == (
            ok("198.18.0.97"), ["api.ns."]), flavour
        assert ask(forwarder, flavour, "A", "api.ns", conf(forwarder.address, ndots=2)) == (
            ok("198.18.0.21"), ["api.ns.ns.svc.cluster.local.", "api.ns.svc.cluster.local."]), flavour


def test_an_absolute_name_is_asked_alone(forwarder: RecordingForwarder) -> None:
    for flavour in FLAVOURS:
        assert ask(forwarder, flavour, "A", "web.", conf(forwarder.address)) == (
            ok("198.18.0.99"), ["web."]), flavour
        assert ask(forwarder, flavour, "A", "web.ns.", conf(forwarder.address)) == (
            fail("EAI_NONAME"), ["web.ns."]), flavour
        assert ask(forwarder, flavour, "A", "web.ns.svc.cluster.local.", conf(forwarder.address)) == (
            ok("198.18.0.10"), ["web.ns.svc.cluster.local."]), flavour


# --------------------------------------------------------------------------------------------
# NODATA, SERVFAIL, no answer


def test_glibc_continues_past_nodata_musl_stops(forwarder: RecordingForwarder) -> None:
    assert ask(forwarder, "glibc", "AAAA", "v4only", conf(forwarder.address)) == (
        ok("2001:db8::11"), ["v4only.ns.svc.cluster.local.", "v4only.svc.cluster.local."])
    musl_nodata = "EAI_NODATA" if musl_at_least(1, 2, 4) else "EAI_NONAME"
    assert ask(forwarder, "musl", "AAAA", "v4only", conf(forwarder.address)) == (
        fail(musl_nodata), ["v4only.ns.svc.cluster.local."])


def test_what_getaddrinfo_returns_for_nodata(forwarder: RecordingForwarder) -> None:
    musl_nodata = "EAI_NODATA" if musl_at_least(1, 2, 4) else "EAI_NONAME"
    name = "v4only.ns.svc.cluster.local."
    assert ask(forwarder, "glibc", "AAAA", name, conf(forwarder.address))[0] == fail("EAI_NODATA")
    assert ask(forwarder, "musl", "AAAA", name, conf(forwarder.address))[0] == fail(musl_nodata)
    # glibc: a walk that met NODATA and then only NXDOMAIN (the as-is name last) says NODATA.
    assert ask(forwarder, "glibc", "AAAA", "v4only", conf(forwarder.address, search=SEARCH[:1])) == (
        fail("EAI_NODATA"), ["v4only.ns.svc.cluster.local.", "v4only."])


def test_glibc_continues_past_servfail_musl_stops(forwarder: RecordingForwarder) -> None:
    resolv = conf(forwarder.address, search=[BROKEN, *SEARCH])
    assert ask(forwarder, "glibc", "A", "web", resolv) == (
        ok("198.18.0.10"), ["web.broken.cluster.local.", "web.ns.svc.cluster.local."])
    # musl retries a SERVFAIL at once, then ignores it and waits out the timeout: EAI_AGAIN.
    assert ask(forwarder, "musl", "A", "web", resolv) == (fail("EAI_AGAIN"), ["web.broken.cluster.local."])
    # glibc: a walk that met SERVFAIL and then only NXDOMAIN says EAI_NONAME, not EAI_AGAIN
    # (res_search's got_servfail → TRY_AGAIN does not reach getaddrinfo's result once later
    # candidates answered NXDOMAIN; got_nodata's NO_DATA does: EAI_NODATA, see above).
    assert ask(forwarder, "glibc", "A", "nope", resolv) == (
        fail("EAI_NONAME"),
        ["nope.broken.cluster.local.", "nope.ns.svc.cluster.local.", "nope.svc.cluster.local.",
         "nope.cluster.local.", "nope."])
    for flavour in FLAVOURS:
        assert ask(forwarder, flavour, "A", f"x.{BROKEN}.", resolv) == (
            fail("EAI_AGAIN"), [f"x.{BROKEN}."]), flavour


def test_a_timeout_mid_walk_ends_the_walk_glibc_then_asks_the_name_as_is(forwarder: RecordingForwarder) -> None:
    resolv = conf(forwarder.address, search=[SLOW, *SEARCH])
    # glibc: no answer is neither NXDOMAIN, NODATA nor SERVFAIL, so the walk is done; the name
    # has not been tried as it is, so it is, and that answer (web. in the root zone) is returned.
    assert ask(forwarder, "glibc", "A", "web", resolv) == (ok("198.18.0.99"), [f"web.{SLOW}.", "web."])
    assert ask(forwarder, "musl", "A", "web", resolv) == (fail("EAI_AGAIN"), [f"web.{SLOW}."])


# --------------------------------------------------------------------------------------------
# Lengths: musl's 256-byte resolv.conf lines, over-long candidates


def _search_line_of(length: int) -> list[str]:
    """The SEARCH domains then padding domains, so that ``search <domains>`` is ``length`` long."""
    line = "search " + " ".join(SEARCH)
    left = length - len(line)
    assert left >= 8
    pads = -(-left // 69)  # each pad is " " + up to 63 + ".test"
    sizes = [left // pads + (1 if i < left % pads else 0) for i in range(pads)]
    domains = [*SEARCH, *(f"{chr(ord('p') + i) * (size - 6)}.test" for i, size in enumerate(sizes))]
    assert len("search " + " ".join(domains)) == length
    return domains


@pytest.mark.parametrize("length", [254, 255, 300])
def test_musl_ignores_a_search_line_longer_than_254_characters(forwarder: RecordingForwarder,
                                                               length: int) -> None:
    resolv = conf(forwarder.address, search=_search_line_of(length))
    assert max(len(line) for line in resolv.splitlines()) == length
    assert ask(forwarder, "glibc", "A", "web", resolv) == (ok("198.18.0.10"), ["web.ns.svc.cluster.local."])
    if length <= 254:  # fgets into char[256]: 254 characters and the newline fit
        assert ask(forwarder, "musl", "A", "web", resolv) == (ok("198.18.0.10"), ["web.ns.svc.cluster.local."])
    else:  # the line is skipped: no search list, the name is asked as it is
        assert ask(forwarder, "musl", "A", "web", resolv) == (ok("198.18.0.99"), ["web."])


def test_a_candidate_too_long_for_dns_musl_skips_glibc_ends_the_walk(forwarder: RecordingForwarder) -> None:
    resolv = conf(forwarder.address, search=["ns.svc.cluster.local", "cluster.local"])
    # 257 characters with the first domain: musl never builds it and goes on.
    assert ask(forwarder, "musl", "A", LONG_257, resolv) == (ok("198.18.0.40"), [f"{LONG_257}.cluster.local."])
    # glibc cannot encode it: NO_RECOVERY ends the walk, then the name as it is.
    assert ask(forwarder, "glibc", "A", LONG_257, resolv) == (ok("198.18.0.41"), [f"{LONG_257}."])


def test_a_candidate_of_254_characters(forwarder: RecordingForwarder) -> None:
    resolv = conf(forwarder.address, search=["ns.svc.cluster.local", "cluster.local"])
    # musl's skip test lets 254 characters through, but its query builder refuses more than 253:
    # musl 1.2.3 then stops (EAI_NONAME), 1.2.4 and later go on to the next domain.
    musl = (ok("198.18.0.42"), [f"{LONG_254}.cluster.local."]) if musl_at_least(1, 2, 4) else (
        fail("EAI_NONAME"), [])
    assert ask(forwarder, "musl", "A", LONG_254, resolv) == musl
    assert ask(forwarder, "glibc", "A", LONG_254, resolv) == (ok("198.18.0.43"), [f"{LONG_254}."])
