"""The knot fixture serves what the integration tests rely on: positive answers, NODATA vs
NXDOMAIN, SRV, CNAME, truncation over UDP with the full answer over TCP, and reloads."""

from __future__ import annotations

import gc
import ipaddress
import os
import re
import socket

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.knot import (
    KnotError,
    KnotNotInstalled,
    KnotServer,
    Record,
    find_knot,
    zone_text,
)

pytestmark = pytest.mark.integration

ZONE = "cluster.local."
WEB = "web.default.svc.cluster.local."
HEADLESS_60 = [f"198.18.1.{i}" for i in range(1, 61)]
HEADLESS_200 = [f"198.18.{2 + i // 100}.{i % 100 + 1}" for i in range(200)]


def cluster_records() -> list[Record]:
    return [
        Record("web.default.svc", "A", "198.18.0.10"),
        Record("dual.default.svc", "A", "198.18.0.11"),
        Record("dual.default.svc", "AAAA", "2001:db8::11"),
        Record("_http._tcp.web.default.svc", "SRV", "0 100 80 web.default.svc.cluster.local."),
        Record("_dns._udp.web.default.svc", "SRV", "0 100 53 web.default.svc.cluster.local.", 5),
        Record("ext.default.svc", "CNAME", "www.example.com."),
        Record("alias.default.svc", "CNAME", "web.default.svc"),
        *(Record("big.default.svc", "A", ip) for ip in HEADLESS_60),
        *(Record("huge.default.svc", "A", ip) for ip in HEADLESS_200),
    ]


KNOT_ZONES = {
    ZONE: zone_text(ZONE, cluster_records(), serial=7, negative_ttl=17),
    "example.com": zone_text("example.com.", [("www", "A", "198.18.9.9", 60)]),
}


def udp(server: KnotServer, qname: str, rdtype: str, **make_kwargs) -> dns.message.Message:
    q = dns.message.make_query(qname, rdtype, **make_kwargs)
    return dns.query.udp(q, server.address, port=server.port, timeout=2)


def tcp(server: KnotServer, qname: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(qname, rdtype)
    return dns.query.tcp(q, server.address, port=server.port, timeout=2)


def answer_set(resp: dns.message.Message, rdtype: str) -> set[str]:
    want = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in resp.answer if rrset.rdtype == want for rd in rrset}


def assert_negative(resp: dns.message.Message, rcode: int, negative_ttl: int = 17) -> None:
    assert resp.rcode() == rcode
    assert resp.flags & dns.flags.AA
    assert resp.answer == []
    soa = [rrset for rrset in resp.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert len(soa) == 1 and soa[0].name.to_text() == ZONE
    assert soa[0][0].minimum == negative_ttl


# --- where it listens -----------------------------------------------------------------------


def test_listens_on_loopback_udp_and_tcp_same_port(knot_server: KnotServer) -> None:
    assert ipaddress.ip_address(knot_server.address).is_loopback
    assert knot_server.nameserver == (knot_server.address, knot_server.port)
    assert knot_server.running
    with socket.create_connection(knot_server.nameserver, timeout=2):
        pass
    assert knot_server.served_serial(ZONE) == 7


def test_refuses_to_listen_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        KnotServer(KNOT_ZONES, address="198.18.0.1")


# --- answers --------------------------------------------------------------------------------


def test_a_record(knot_server: KnotServer) -> None:
    resp = udp(knot_server, WEB, "A")
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.flags & dns.flags.AA
    assert answer_set(resp, "A") == {"198.18.0.10"}
    assert resp.answer[0].ttl == 30


def test_aaaa_for_ipv4_only_name_is_nodata(knot_server: KnotServer) -> None:
    assert_negative(udp(knot_server, WEB, "AAAA"), dns.rcode.NOERROR)


def test_dual_stack_name_answers_both_families(knot_server: KnotServer) -> None:
    name = "dual.default.svc.cluster.local."
    assert answer_set(udp(knot_server, name, "A"), "A") == {"198.18.0.11"}
    assert answer_set(udp(knot_server, name, "AAAA"), "AAAA") == {"2001:db8::11"}


def test_missing_name_is_nxdomain(knot_server: KnotServer) -> None:
    assert_negative(udp(knot_server, "nope.default.svc.cluster.local.", "A"), dns.rcode.NXDOMAIN)


def test_empty_non_terminal_is_nodata_not_nxdomain(knot_server: KnotServer) -> None:
    # default.svc.cluster.local. owns no records but has names below it.
    assert_negative(udp(knot_server, "default.svc.cluster.local.", "A"), dns.rcode.NOERROR)


def test_srv_records(knot_server: KnotServer) -> None:
    resp = udp(knot_server, "_http._tcp." + WEB, "SRV")
    assert answer_set(resp, "SRV") == {"0 100 80 web.default.svc.cluster.local."}
    resp = udp(knot_server, "_dns._udp." + WEB, "SRV")
    assert answer_set(resp, "SRV") == {"0 100 53 web.default.svc.cluster.local."}
    assert resp.answer[0].ttl == 5
    assert_negative(udp(knot_server, "_https._tcp." + WEB, "SRV"), dns.rcode.NXDOMAIN)


def test_cname_to_other_zone(knot_server: KnotServer) -> None:
    # knot answers the CNAME alone when the target is in another zone; the target's own zone
    # answers the target.
    resp = udp(knot_server, "ext.default.svc.cluster.local.", "A")
    assert resp.rcode() == dns.rcode.NOERROR
    assert answer_set(resp, "CNAME") == {"www.example.com."}
    assert answer_set(resp, "A") == set()
    target = udp(knot_server, "www.example.com.", "A")
    assert answer_set(target, "A") == {"198.18.9.9"}
    assert target.answer[0].ttl == 60


def test_cname_within_zone_is_followed(knot_server: KnotServer) -> None:
    resp = udp(knot_server, "alias.default.svc.cluster.local.", "A")
    assert answer_set(resp, "CNAME") == {WEB}
    assert answer_set(resp, "A") == {"198.18.0.10"}


def test_unserved_zone_is_refused(knot_server: KnotServer) -> None:
    resp = udp(knot_server, "web.default.svc.other.local.", "A")
    assert resp.rcode() == dns.rcode.REFUSED
    assert not resp.flags & dns.flags.AA


# --- truncation -----------------------------------------------------------------------------


def test_60_records_truncate_over_plain_udp_and_come_whole_over_tcp(knot_server) -> None:
    name = "big.default.svc.cluster.local."
    resp = udp(knot_server, name, "A")  # no EDNS: 512-byte limit
    assert resp.flags & dns.flags.TC
    assert len(answer_set(resp, "A")) < 60
    assert answer_set(tcp(knot_server, name, "A"), "A") == set(HEADLESS_60)
    # With EDNS and a 1232-byte buffer the same answer fits in one datagram.
    resp = udp(knot_server, name, "A", use_edns=0, payload=1232)
    assert not resp.flags & dns.flags.TC
    assert answer_set(resp, "A") == set(HEADLESS_60)


def test_200_records_truncate_even_with_edns(knot_server: KnotServer) -> None:
    name = "huge.default.svc.cluster.local."
    resp = udp(knot_server, name, "A", use_edns=0, payload=1232)
    assert resp.flags & dns.flags.TC
    assert len(answer_set(resp, "A")) < 200
    assert answer_set(tcp(knot_server, name, "A"), "A") == set(HEADLESS_200)


# --- reload ---------------------------------------------------------------------------------


def test_reload_changes_adds_and_removes_zones(knot_factory) -> None:
    server = knot_factory({ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.10")])})
    assert answer_set(udp(server, WEB, "A"), "A") == {"198.18.0.10"}
    assert udp(server, "www.example.com.", "A").rcode() == dns.rcode.REFUSED

    server.reload(
        {
            ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.20")], serial=2),
            "example.com.": zone_text("example.com.", [("www", "A", "198.18.9.9")]),
        }
    )
    assert server.served_serial(ZONE) == 2
    assert answer_set(udp(server, WEB, "A"), "A") == {"198.18.0.20"}
    assert answer_set(udp(server, "www.example.com.", "A"), "A") == {"198.18.9.9"}

    server.remove_zone("example.com")
    assert udp(server, "www.example.com.", "A").rcode() == dns.rcode.REFUSED
    assert set(server.zones) == {ZONE}
    assert answer_set(udp(server, WEB, "A"), "A") == {"198.18.0.20"}


def test_reload_with_unchanged_serial_still_serves_new_text(knot_factory) -> None:
    server = knot_factory({ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.10")])})
    server.set_zone(ZONE, zone_text(ZONE, [("other.default.svc", "A", "198.18.0.30")]))
    assert_negative(udp(server, WEB, "A"), dns.rcode.NXDOMAIN, negative_ttl=30)
    resp = udp(server, "other.default.svc.cluster.local.", "A")
    assert answer_set(resp, "A") == {"198.18.0.30"}


def test_invalid_zone_text_is_rejected_and_old_zone_kept(knot_factory) -> None:
    server = knot_factory({ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.10")])})
    bad = zone_text(ZONE, [("x", "A", "198.18.0.1"), ("x", "CNAME", "web")], serial=9)
    with pytest.raises(KnotError, match=re.escape("cluster.local")):
        server.reload({ZONE: bad})
    assert server.served_serial(ZONE) == 1
    assert answer_set(udp(server, WEB, "A"), "A") == {"198.18.0.10"}


def test_zone_without_soa_is_rejected_before_start() -> None:
    with pytest.raises(KnotError, match=re.escape("example.com")):
        KnotServer({"example.com.": "www 30 IN A 198.18.9.9\n"})


# --- lifecycle ------------------------------------------------------------------------------


def test_stop_releases_the_port_and_removes_its_files() -> None:
    server = KnotServer({ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.10")])})
    with server:
        workdir = server.workdir
        pid = server.pid
        assert (workdir / "knot.conf").exists()
        address, port = server.nameserver
    assert not server.running
    assert not workdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The port is free again, for UDP and for TCP.
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((address, port))
    server.stop()  # idempotent


def test_restart_keeps_address_and_port() -> None:
    server = KnotServer({ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.10")])})
    with server:
        first = server.nameserver
        assert answer_set(tcp(server, WEB, "A"), "A") == {"198.18.0.10"}
    with server:
        assert server.nameserver == first
        assert answer_set(udp(server, WEB, "A"), "A") == {"198.18.0.10"}


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        server = KnotServer(KNOT_ZONES, address="127.0.0.1", port=port)
        with pytest.raises(KnotError, match=f"port {port} is in use"):
            server.start()
        assert not server.running


def test_forgotten_server_is_stopped_when_collected() -> None:
    server = KnotServer({ZONE: zone_text(ZONE, [("web.default.svc", "A", "198.18.0.10")])}).start()
    pid, workdir = server.pid, server.workdir
    os.kill(pid, 0)  # running
    del server
    gc.collect()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


def test_ipv6_loopback(knot_factory) -> None:
    server = knot_factory(KNOT_ZONES, address="::1")
    q = dns.message.make_query(WEB, "A")
    resp = dns.query.udp(q, "::1", port=server.port, timeout=2)
    assert answer_set(resp, "A") == {"198.18.0.10"}


def test_zone_text_validates_its_input() -> None:
    with pytest.raises(ValueError, match="serial"):
        zone_text(ZONE, [], serial=2**32)
    with pytest.raises(ValueError, match="BOGUS"):
        zone_text(ZONE, [("x", "BOGUS", "1")])
    with pytest.raises(ValueError, match="owner, type, rdata"):
        zone_text(ZONE, [("x", "A")])  # type: ignore[list-item]


def test_missing_knot_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    find_knot()  # installed here
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("tests.support.knot._SBIN_DIRS", ("/nonexistent/sbin",))
    with pytest.raises(KnotNotInstalled, match=re.escape("20-knot.sh")):
        KnotServer(KNOT_ZONES)
