"""agent.probes.dns.resolution: the stub-resolver walk, decision by decision, without sockets.

The rules are libc's and dnspython's (reference/k8s-dns.md §3): a name is tried `attempts`
times over the servers in order, a timeout or error moves to the next server; any rcode ends
the retries for that name; NXDOMAIN moves to the next search candidate (musl, dnspython);
a truncated UDP reply is asked again over TCP; ECONNREFUSED ends the lookup (glibc).
"""

from __future__ import annotations

import errno

import pytest

from agent.probes.dns.resolution import (
    ASK,
    ASK_NEXT_NAME,
    FINISHED,
    Resolution,
    Status,
    os_error_outcome,
    server_label,
)

A, B = ("198.18.0.10", 53), ("198.18.0.11", 5353)
NAMES = ("web.shop.svc.cluster.local.", "web.svc.cluster.local.", "web.cluster.local.", "web.")
TC = 0x0200


def walk(*, servers: tuple[tuple[str, int], ...] = (A, B), attempts: int = 2,
         names: tuple[str, ...] = NAMES) -> Resolution:
    return Resolution(names, "A", servers, attempts, trace=False)


def test_an_answer_ends_the_walk_at_once() -> None:
    r = walk()
    assert r.reply(0, 0, ["198.18.0.1"], "udp") == FINISHED
    assert (r.status, r.records, r.qname) == (Status.ANSWER, ["198.18.0.1"], NAMES[0])


def test_noerror_without_records_is_nodata_and_ends_the_walk() -> None:
    r = walk()
    assert r.reply(0, 0, [], "udp") == FINISHED
    assert r.status is Status.NODATA and r.qname == NAMES[0]


def test_nxdomain_walks_the_search_list_and_ends_nxdomain_after_the_last_name() -> None:
    r = walk()
    asked = [r.qname]
    while (step := r.reply(3, 0, [], "udp")) == ASK_NEXT_NAME:
        asked.append(r.qname)
        assert r.current_server == A  # each new name starts again at the first server
    assert step == FINISHED
    assert asked == list(NAMES)
    assert r.status is Status.NXDOMAIN and r.records == ()


def test_nxdomain_then_answer_on_a_later_candidate() -> None:
    r = walk()
    assert r.reply(3, 0, [], "udp") == ASK_NEXT_NAME
    assert r.reply(0, 0, ["198.18.0.1"], "udp") == FINISHED
    assert (r.status, r.qname) == (Status.ANSWER, NAMES[1])


@pytest.mark.parametrize(("rcode", "status", "detail"), [
    (2, Status.SERVFAIL, "SERVFAIL from 198.18.0.10"),
    (5, Status.REFUSED, "REFUSED by 198.18.0.10"),
])
def test_servfail_and_refused_end_the_walk_without_asking_other_servers(rcode: int, status: Status,
                                                                         detail: str) -> None:
    # The walk stops here, as musl's does (glibc would ask the next server, then go on).
    r = walk()
    assert r.reply(rcode, 0, [], "udp") == FINISHED
    assert (r.status, r.detail, r.qname) == (status, detail, NAMES[0])


@pytest.mark.parametrize(("rcode", "detail"), [(4, "NOTIMP from 198.18.0.10"), (1, "FORMERR from 198.18.0.10")])
def test_other_rcodes_are_errors_retried_on_the_next_server(rcode: int, detail: str) -> None:
    r = walk(servers=(A, B), attempts=1)
    assert r.reply(rcode, 0, [], "udp") == ASK and r.current_server == B
    assert (r.status, r.detail) == (Status.ERROR, detail)
    assert r.reply(rcode, 0, [], "udp") == FINISHED and r.status is Status.ERROR


def test_timeouts_rotate_over_servers_then_attempts_then_give_up() -> None:
    r = walk(servers=(A, B), attempts=2)
    tried = [r.current_server]
    while (step := r.timed_out(2.0)) == ASK:
        tried.append(r.current_server)
    assert step == FINISHED
    assert tried == [A, B, A, B]  # attempts x servers, in order
    assert r.status is Status.TIMEOUT and r.qname == NAMES[0]  # a timeout never walks on
    assert r.detail == "no reply from 198.18.0.11:5353 within 2s"


def test_a_reply_after_a_timeout_on_another_server_counts() -> None:
    r = walk()
    assert r.timed_out(1.0) == ASK
    assert r.reply(0, 0, ["198.18.0.1"], "udp") == FINISHED
    assert r.status is Status.ANSWER and r.current_server == B


def test_truncated_udp_reply_is_asked_again_over_tcp_same_server() -> None:
    r = walk()
    assert r.reply(0, TC, ["198.18.0.1"], "udp") == ASK
    assert r.tcp and r.current_server == A and r.qname == NAMES[0]
    assert r.reply(0, 0, ["198.18.0.1", "198.18.0.2"], "tcp") == FINISHED
    assert r.status is Status.ANSWER and len(r.records) == 2


def test_a_truncated_tcp_reply_is_taken_as_it_is() -> None:
    r = walk()
    assert r.reply(0, TC, ["198.18.0.1"], "tcp") == FINISHED
    assert r.status is Status.ANSWER


def test_malformed_reply_is_an_error_and_is_retried_like_one() -> None:
    r = walk(servers=(A,), attempts=2)
    assert r.malformed("record cut short") == ASK
    assert r.malformed("record cut short") == FINISHED
    assert r.status is Status.ERROR
    assert r.detail == "malformed reply from 198.18.0.10: record cut short"


def test_connection_refused_ends_the_lookup_as_refused() -> None:
    r = walk()
    status, detail = os_error_outcome(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), A, "udp")
    assert status is Status.REFUSED and "ICMP port unreachable" in detail
    assert r.advance(status, detail) == FINISHED  # glibc aborts on ECONNREFUSED; no other server
    assert r.status is Status.REFUSED and r.current_server == A


def test_unreachable_server_is_an_error_that_moves_on_to_the_next_server() -> None:
    r = walk()
    status, detail = os_error_outcome(OSError(errno.EHOSTUNREACH, "No route to host"), A, "udp")
    assert status is Status.ERROR and detail == "198.18.0.10 (udp) unreachable: No route to host"
    assert r.advance(status, detail) == ASK and r.current_server == B


def test_records_of_an_earlier_outcome_do_not_survive_a_failure() -> None:
    r = walk(servers=(A,), attempts=1)
    r.records = ["198.18.0.9"]
    assert r.timed_out(1.0) == FINISHED
    assert r.records == ()


@pytest.mark.parametrize(("server", "label"), [
    (("198.18.0.10", 53), "198.18.0.10"),
    (("198.18.0.10", 1053), "198.18.0.10:1053"),
    (("fd00::a", 53), "fd00::a"),
    (("fd00::a", 1053), "[fd00::a]:1053"),
])
def test_server_labels(server: tuple[str, int], label: str) -> None:
    assert server_label(server) == label


def test_status_is_a_closed_set_of_strings() -> None:
    assert [s.value for s in Status] == ["answer", "nodata", "nxdomain", "servfail", "refused", "timeout", "error"]
    assert Status.TIMEOUT == "timeout"
