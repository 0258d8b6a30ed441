"""agent.probes.dns.wire: the hot-path answer reader, checked against dnspython.

Messages are built with dnspython (or by hand where dnspython will not produce the shape,
e.g. compressed SRV targets, which RFC 2782 forbids but servers send), and every result is
compared with what `dns.message.from_wire` decodes. Malformed input must raise WireError and
nothing else (the engine maps WireError to result `error`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from agent.probes.dns import wire

FUZZ = hsettings(max_examples=400, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- builders


def response(qname: str, qtype: str, answers: Sequence[tuple[str, str, Sequence[str]]] = (),
             authority: Sequence[tuple[str, str, Sequence[str]]] = (), rcode: int = dns.rcode.NOERROR,
             flags: int = 0) -> bytes:
    q = dns.message.make_query(qname, qtype, id=0x4242)  # fixed id: no randomness inside strategies
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    r.flags |= flags
    for name, rtype, texts in answers:
        r.answer.append(dns.rrset.from_text_list(name, 30, "IN", rtype, list(texts)))
    for name, rtype, texts in authority:
        r.authority.append(dns.rrset.from_text_list(name, 30, "IN", rtype, list(texts)))
    return r.to_wire()


def oracle(data: bytes, qtype: int) -> tuple[int, int, list[str]]:
    """What dnspython's resolver takes as the answer (`resolve_chaining`: the records of the
    question's name, else of the first name down its CNAME chain that has some), in the
    reader's text format."""
    m = dns.message.from_wire(data)
    out: list[str] = []
    # resolve_chaining's loop (dnspython), for `qtype` (tests also read an answer as another type)
    rrsets = []
    if len(m.question) == 1:
        name = m.question[0].name
        for _ in range(dns.message.MAX_CHAIN + 1):
            try:
                rrsets = [m.find_rrset(m.answer, name, dns.rdataclass.IN, qtype)]
                break
            except KeyError:
                if qtype == wire.TYPE_CNAME:
                    break
                try:
                    name = next(iter(m.find_rrset(m.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME))).target
                except KeyError:
                    break
    for rrset in rrsets:
        if rrset is None or rrset.rdtype != qtype:
            continue
        for rd in rrset:
            if qtype in (wire.TYPE_A, wire.TYPE_AAAA):
                out.append(rd.address)
            elif qtype == wire.TYPE_CNAME:
                out.append(rd.target.to_text().lower())
            else:
                out.append(f"{rd.port} {rd.target.to_text().lower()}")
    return m.rcode(), m.flags, out


def encode_name(name: str) -> bytes:
    labels = [lab for lab in name.rstrip(".").split(".") if lab]
    return b"".join(bytes([len(lab)]) + lab.encode() for lab in labels) + b"\x00"


def raw(question: bytes, records: Sequence[tuple[bytes, int, bytes]], *, flags: int = 0x8180,
        qdcount: int = 1, ancount: int | None = None) -> bytes:
    """A message by hand: `records` are (owner bytes, type, rdata bytes) in the answer section."""
    header = struct.pack("!HHHHHH", 0x1234, flags, qdcount, len(records) if ancount is None else ancount, 0, 0)
    body = b"".join(owner + struct.pack("!HHIH", rtype, 1, 30, len(rd)) + rd for owner, rtype, rd in records)
    return header + question + body


SOA = ("cluster.local.", "SOA", ["ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30"])
WEB = "web.shop.svc.cluster.local."

# --------------------------------------------------------------------------- well-formed answers

CASES = [
    pytest.param(response(WEB, "A", [(WEB, "A", ["198.18.0.10", "198.18.0.11"])]), wire.TYPE_A,
                 (0, ["198.18.0.10", "198.18.0.11"]), id="a"),
    pytest.param(response(WEB, "AAAA", [(WEB, "AAAA", ["fd00:10:96::1234", "fd00::1"])]), wire.TYPE_AAAA,
                 (0, ["fd00:10:96::1234", "fd00::1"]), id="aaaa"),
    pytest.param(response(WEB, "AAAA", [(WEB, "AAAA", ["2001:db8:0:0:1:0:0:1", "::ffff:198.18.0.1"])]),
                 wire.TYPE_AAAA, (0, ["2001:db8::1:0:0:1", "::ffff:198.18.0.1"]), id="aaaa-text-form"),
    pytest.param(response("www.example.com.", "A", [
        ("www.example.com.", "CNAME", ["edge.Example.NET."]),
        ("edge.example.net.", "CNAME", ["pop1.edge.example.net."]),
        ("pop1.edge.example.net.", "A", ["198.18.5.5"]),
    ]), wire.TYPE_A, (0, ["198.18.5.5"]), id="cname-chain-a-only"),
    pytest.param(response("legacy.shop.svc.cluster.local.", "CNAME", [
        ("legacy.shop.svc.cluster.local.", "CNAME", ["Api.Example.COM."]),
    ]), wire.TYPE_CNAME, (0, ["api.example.com."]), id="cname-lowercased"),
    pytest.param(response("www.example.com.", "A", [
        ("www.example.com.", "CNAME", ["edge.example.net."]),
        ("edge.example.net.", "CNAME", ["pop1.edge.example.net."]),
        ("pop1.edge.example.net.", "A", ["198.18.5.5"]),
    ]), wire.TYPE_CNAME, (0, ["edge.example.net."]), id="cname-chain-cnames"),  # the question's own CNAME only
    pytest.param(response("web.shop.svc.cluster.local.", "A", [
        ("other.shop.svc.cluster.local.", "A", ["198.18.0.66"]),  # e.g. a rewrite without `answer name`
    ]), wire.TYPE_A, (0, []), id="answer-owned-by-another-name"),
    pytest.param(response("web.shop.svc.cluster.local.", "A", [
        ("web.shop.svc.cluster.local.", "A", ["198.18.0.10"]),
        ("other.shop.svc.cluster.local.", "A", ["198.18.0.66"]),
    ]), wire.TYPE_A, (0, ["198.18.0.10"]), id="stray-record-beside-the-answer"),
    pytest.param(response("_http._tcp." + WEB, "SRV", [("_http._tcp." + WEB, "SRV", ["0 100 80 " + WEB])]),
                 wire.TYPE_SRV, (0, ["80 " + WEB]), id="srv"),
    pytest.param(response("_pg._tcp.db.shop.svc.cluster.local.", "SRV", [
        ("_pg._tcp.db.shop.svc.cluster.local.", "SRV",
         ["0 33 5432 db-0.db.shop.svc.cluster.local.", "10 33 5433 DB-1.db.shop.svc.cluster.local."]),
    ]), wire.TYPE_SRV, (0, ["5432 db-0.db.shop.svc.cluster.local.", "5433 db-1.db.shop.svc.cluster.local."]),
        id="srv-headless-priority-weight-ignored"),
    pytest.param(response("nope.shop.svc.cluster.local.", "A", authority=[SOA], rcode=dns.rcode.NXDOMAIN),
                 wire.TYPE_A, (3, []), id="nxdomain-with-soa"),
    pytest.param(response(WEB, "AAAA", authority=[SOA]), wire.TYPE_AAAA, (0, []), id="nodata-with-soa"),
    pytest.param(response(WEB, "A", [(WEB, "AAAA", ["fd00::1"])]), wire.TYPE_A, (0, []), id="other-type-only"),
    pytest.param(response(WEB, "A", rcode=dns.rcode.SERVFAIL), wire.TYPE_A, (2, []), id="servfail"),
    pytest.param(response(WEB, "A", rcode=dns.rcode.REFUSED), wire.TYPE_A, (5, []), id="refused"),
]


@pytest.mark.parametrize(("data", "qtype", "expected"), CASES)
def test_parse_answer(data: bytes, qtype: int, expected: tuple[int, list[str]]) -> None:
    rcode, flags, records = wire.parse_answer(data, qtype)
    assert (rcode, sorted(records)) == (expected[0], sorted(expected[1]))
    o_rcode, o_flags, o_records = oracle(data, qtype)
    assert (rcode, flags) == (o_rcode, o_flags)
    assert sorted(records) == sorted(o_records)


def test_tc_flag_is_returned() -> None:
    data = response(WEB, "A", [(WEB, "A", ["198.18.0.10"])], flags=dns.flags.TC)
    _rcode, flags, _records = wire.parse_answer(data, wire.TYPE_A)
    assert flags & wire.FLAG_TC
    _rcode, flags, _records = wire.parse_answer(response(WEB, "A"), wire.TYPE_A)
    assert not flags & wire.FLAG_TC


def test_srv_with_compressed_targets() -> None:
    qname = "_http._tcp." + WEB
    question = encode_name(qname) + struct.pack("!HH", 33, 1)
    web_at = 12 + len(b"\x05_http\x04_tcp")  # "web.shop.svc.cluster.local." inside the question
    svc_at = web_at + len(b"\x03web\x04shop")  # "svc.cluster.local."
    owner = b"\xc0\x0c"
    records = [
        (owner, 33, struct.pack("!HHH", 0, 50, 80) + struct.pack("!H", 0xC000 | web_at)),  # fully compressed
        (owner, 33,
         struct.pack("!HHH", 0, 50, 8080) + b"\x05pod-1\x03web\x04shop" + struct.pack("!H", 0xC000 | svc_at)),
    ]
    data = raw(question, records)
    assert wire.parse_answer(data, wire.TYPE_SRV) == (0, 0x8180, ["80 " + WEB, "8080 pod-1." + WEB])
    assert oracle(data, wire.TYPE_SRV)[2] == ["80 " + WEB, "8080 pod-1." + WEB]


def test_cname_target_compressed_against_an_earlier_record() -> None:
    data = response("a.example.com.", "CNAME", [("a.example.com.", "CNAME", ["b.a.example.com."])])
    assert data.endswith(b"\x01b\xc0\x0c")  # dnspython compressed the target onto the question
    assert wire.parse_answer(data, wire.TYPE_CNAME)[2] == ["b.a.example.com."]


def test_question_bytes() -> None:
    data = response("Web.Shop.svc.cluster.local.", "A", [(WEB, "A", ["198.18.0.10"])])
    assert wire.question_bytes(data) == encode_name(WEB) + b"\x00\x01\x00\x01"
    q = dns.message.make_query(WEB, "A", id=1).to_wire()
    assert wire.question_bytes(q) == wire.question_bytes(data)


def test_header() -> None:
    data = response(WEB, "A", [(WEB, "A", ["198.18.0.10", "198.18.0.11"])])
    qid, flags, qd, an = wire.header(data)
    m = dns.message.from_wire(data)
    assert (qid, flags, qd, an) == (m.id, m.flags, 1, 2)


# --------------------------------------------------------------------------- read_name


@pytest.mark.parametrize(
    ("data", "offset", "expected"),
    [
        pytest.param(b"\x00", 0, (".", 1), id="root"),
        pytest.param(b"\x03Web\x04SHOP\x00", 0, ("web.shop.", 10), id="lowercased"),
        pytest.param(b"\x03web\x04shop\x00" + b"\x03pod\xc0\x00", 10, ("pod.web.shop.", 16), id="pointer-ends-name"),
        pytest.param(b"\x04shop\x00\x03web\xc0\x00\x03pod\xc0\x06", 12, ("pod.web.shop.", 18), id="pointer-chain"),
        pytest.param(b"xx\xc0\x04\x02ab\x00", 2, ("ab.", 4), id="forward-pointer"),
    ],
)
def test_read_name(data: bytes, offset: int, expected: tuple[str, int]) -> None:
    assert wire.read_name(data, offset) == expected


def test_read_name_agrees_with_dnspython() -> None:
    data = response("x.Example.COM.", "CNAME", [("x.example.com.", "CNAME", ["Deep.Sub.x.example.com."])])
    m = dns.message.from_wire(data)
    # the answer's rdata starts after header, question (name + 4), owner pointer (2) and RR header (10)
    rd_at = 12 + len(encode_name("x.example.com.")) + 4 + 2 + 10
    name, _ = wire.read_name(data, rd_at)
    assert name == m.answer[0][0].target.to_text().lower()


@pytest.mark.timeout(10)  # a missing loop guard would spin forever
@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        pytest.param(b"", 0, "past the end", id="empty"),
        pytest.param(b"\x03web", 0, "past the end", id="no-terminator"),
        pytest.param(b"\x05ab", 0, "label runs past the end", id="label-past-end"),
        pytest.param(b"\x00", 5, "past the end", id="offset-past-end"),
        pytest.param(b"\x03web\xc0", 0, "truncated compression pointer", id="truncated-pointer"),
        pytest.param(b"\xc0\x00", 0, "compression pointer loop", id="self-pointer"),
        pytest.param(b"\xc0\x02\xc0\x00", 0, "compression pointer loop", id="two-pointer-loop"),
        pytest.param(b"\x01a\xc0\x00", 0, "compression pointer loop", id="loop-through-a-label"),
        pytest.param(b"\xc0\x10", 0, "past the end", id="pointer-past-end"),
        pytest.param(b"\x40abc", 0, "unknown label type", id="label-type-0x40"),
        pytest.param(b"\x80abc", 0, "unknown label type", id="label-type-0x80"),
    ],
)
def test_read_name_malformed(data: bytes, offset: int, words: str) -> None:
    with pytest.raises(wire.WireError, match=words):
        wire.read_name(data, offset)


# --------------------------------------------------------------------------- malformed messages

Q_A = encode_name(WEB) + struct.pack("!HH", 1, 1)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("data", "qtype", "words"),
    [
        pytest.param(b"", wire.TYPE_A, "shorter than a DNS header", id="empty"),
        pytest.param(b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00", wire.TYPE_A, "shorter than a DNS header",
                     id="11-byte-header"),
        pytest.param(dns.message.make_query(WEB, "A", id=1).to_wire(), wire.TYPE_A, "query, not a reply", id="a-query"),
        pytest.param(raw(Q_A, [(b"\xc0\x0c", 1, b"\xc6\x12\x00\x0a\x00")]), wire.TYPE_A, "A record of 5 bytes",
                     id="a-rdlen-5"),
        pytest.param(raw(Q_A, [(b"\xc0\x0c", 1, b"\xc6\x12\x00")]), wire.TYPE_A, "A record of 3 bytes",
                     id="a-rdlen-3"),
        pytest.param(raw(Q_A, [(b"\xc0\x0c", 28, b"\xfd" + b"\x00" * 3)]), wire.TYPE_AAAA, "AAAA record of 4 bytes",
                     id="aaaa-rdlen-4"),
        pytest.param(raw(Q_A, [(b"\xc0\x0c", 33, b"\x00\x00\x00\x00\x00\x50")]), wire.TYPE_SRV,
                     "SRV record of 6 bytes", id="srv-rdlen-6"),
        pytest.param(raw(Q_A, [(b"\xc0\x0c", 33, b"\x00\x00\x00\x00\x00\x50\xc0\x0c")])[:-1], wire.TYPE_SRV,
                     "record data runs past the end", id="rdata-cut"),
        pytest.param(raw(Q_A, [], ancount=1), wire.TYPE_A, "past the end", id="ancount-without-records"),
        pytest.param(raw(Q_A, [(b"\xc0\x0c", 1, b"\xc6\x12\x00\x0a")])[:-8], wire.TYPE_A,
                     "answer record runs past the end", id="rr-header-cut"),
        # header 12 + question 32 + owner 2 + RR header 10 + priority/weight/port 6: the target is at 62
    pytest.param(raw(Q_A, [(b"\xc0\x0c", 33, b"\x00\x00\x00\x00\x00\x50\xc0\x3e")]), wire.TYPE_SRV,
                 "compression pointer loop", id="srv-target-pointer-into-itself"),
        pytest.param(raw(b"\xc0\x0c\x00\x01\x00\x01", [(b"\xc0\x0c", 5, b"\xc0\x0c")]), wire.TYPE_CNAME,
                     "compression pointer loop", id="cname-target-loops"),
        pytest.param(raw(Q_A, [(b"\x40x", 1, b"\xc6\x12\x00\x0a")]), wire.TYPE_A, "unknown label type",
                     id="owner-label-type"),
    ],
)
def test_malformed_messages(data: bytes, qtype: int, words: str) -> None:
    with pytest.raises(wire.WireError, match=words):
        wire.parse_answer(data, qtype)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(response(WEB, "A", [(WEB, "A", ["198.18.0.10", "198.18.0.11"])]), id="a"),
        pytest.param(response("_http._tcp." + WEB, "SRV", [("_http._tcp." + WEB, "SRV", ["0 100 80 " + WEB])]),
                     id="srv"),
        pytest.param(response("www.example.com.", "A", [("www.example.com.", "CNAME", ["edge.example.net."]),
                                                         ("edge.example.net.", "A", ["198.18.5.5"])]), id="cname"),
    ],
)
def test_every_truncation_of_an_answer_is_a_wire_error(data: bytes) -> None:
    qtype = dns.message.from_wire(data).question[0].rdtype
    for cut in range(len(data)):
        with pytest.raises(wire.WireError):
            wire.parse_answer(data[:cut], qtype)


# --------------------------------------------------------------------------- property tests

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20)
_name = st.lists(_label, min_size=1, max_size=5).map(lambda labels: ".".join(labels) + ".")
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_srv = st.tuples(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535), _name).map(
    lambda t: f"{t[0]} {t[1]} {t[2]} {t[3]}")
_rrset = st.one_of(
    st.tuples(_name, st.just("A"), st.lists(_ipv4, min_size=1, max_size=4, unique=True)),
    st.tuples(_name, st.just("AAAA"), st.lists(_ipv6, min_size=1, max_size=4, unique=True)),
    st.tuples(_name, st.just("CNAME"), st.lists(_name, min_size=1, max_size=1)),
    st.tuples(_name, st.just("SRV"), st.lists(_srv, min_size=1, max_size=4, unique=True)),
)
_message_parts = st.tuples(
    _name, st.sampled_from(["A", "AAAA", "CNAME", "SRV"]),
    st.lists(_rrset, max_size=5).filter(lambda rs: len({(n.lower(), t) for n, t, _ in rs}) == len(rs)),
    st.sampled_from([0, 2, 3, 5]), st.booleans(),
)


def _build(parts: tuple[str, str, list[tuple[str, str, list[str]]], int, bool]) -> bytes:
    qname, qtype, rrsets, rcode, tc = parts
    return response(qname, qtype, rrsets, rcode=rcode, flags=dns.flags.TC if tc else 0)


_QTYPES = st.sampled_from([wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_CNAME, wire.TYPE_SRV])


@FUZZ
@given(parts=_message_parts, qtype=_QTYPES)
def test_agrees_with_dnspython_on_generated_messages(parts: tuple, qtype: int) -> None:  # type: ignore[type-arg]
    data = _build(parts)
    rcode, flags, records = wire.parse_answer(data, qtype)
    o_rcode, o_flags, o_records = oracle(data, qtype)
    assert (rcode, flags) == (o_rcode, o_flags)
    assert sorted(records) == sorted(o_records)


@FUZZ
@given(data=st.binary(max_size=600), qtype=_QTYPES)
def test_arbitrary_bytes_raise_only_wire_error(data: bytes, qtype: int) -> None:
    try:
        rcode, _flags, records = wire.parse_answer(data, qtype)
    except wire.WireError:
        return
    assert 0 <= rcode <= 15 and all(isinstance(r, str) for r in records)


@FUZZ
@given(parts=_message_parts, qtype=_QTYPES,
       edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, 10_000))
def test_corrupted_messages_raise_only_wire_error(parts: tuple, qtype: int,  # type: ignore[type-arg]
                                                  edits: list[tuple[int, int]], cut: int) -> None:
    buf = bytearray(_build(parts))
    for pos, byte in edits:
        buf[pos % len(buf)] = byte
    buf = buf[: max(12, cut % (len(buf) + 1))]
    try:
        wire.parse_answer(bytes(buf), qtype)
    except wire.WireError:
        pass


@FUZZ
@given(data=st.binary(max_size=300), offset=st.integers(0, 400))
def test_read_name_on_arbitrary_bytes_raises_only_wire_error(data: bytes, offset: int) -> None:
    try:
        name, end = wire.read_name(data, offset)
    except wire.WireError:
        return
    assert name.endswith(".") and offset < end <= len(data)


# --------------------------------------------------------------------------- question_end (the engine's path)


def _question_end(data: bytes) -> int:
    return 12 + len(wire.question_bytes(data))


@pytest.mark.parametrize(("data", "qtype", "expected"), CASES)
def test_question_end_gives_the_same_answer(data: bytes, qtype: int, expected: tuple[int, list[str]]) -> None:
    assert wire.parse_answer(data, qtype, _question_end(data)) == wire.parse_answer(data, qtype)


def test_question_end_is_ignored_unless_there_is_exactly_one_question() -> None:
    # qdcount 0: the bytes after the header are an answer record, not a question to skip.
    data = raw(b"", [(encode_name(WEB), 1, b"\xc6\x12\x00\x0a")], qdcount=0)
    assert wire.parse_answer(data, wire.TYPE_A, 12 + len(Q_A)) == wire.parse_answer(data, wire.TYPE_A)
    assert wire.parse_answer(data, wire.TYPE_A)[2] == ["198.18.0.10"]
    # qdcount 2: both questions are walked, whatever question_end says.
    two = raw(Q_A + Q_A, [(b"\xc0\x0c", 1, b"\xc6\x12\x00\x0a")], qdcount=2)
    assert wire.parse_answer(two, wire.TYPE_A, 12 + len(Q_A)) == (0, 0x8180, ["198.18.0.10"])


@FUZZ
@given(parts=_message_parts, qtype=_QTYPES)
def test_question_end_agrees_with_dnspython_on_generated_messages(parts: tuple, qtype: int) -> None:  # type: ignore[type-arg]
    data = _build(parts)
    rcode, flags, records = wire.parse_answer(data, qtype, _question_end(data))
    o_rcode, o_flags, o_records = oracle(data, qtype)
    assert (rcode, flags) == (o_rcode, o_flags)
    assert sorted(records) == sorted(o_records)


@FUZZ
@given(parts=_message_parts, qtype=_QTYPES,
       edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.integers(0, 10_000))
def test_question_end_on_corrupted_messages_raises_only_wire_error(parts: tuple, qtype: int,  # type: ignore[type-arg]
                                                                   edits: list[tuple[int, int]], cut: int) -> None:
    good = _build(parts)
    end = _question_end(good)
    buf = bytearray(good)
    for pos, byte in edits:
        if pos % len(buf) >= end:  # the engine only gets here with its own question intact
            buf[pos % len(buf)] = byte
    buf = buf[: max(end, cut % (len(buf) + 1))]
    try:
        wire.parse_answer(bytes(buf), qtype, end)
    except wire.WireError:
        pass


# --------------------------------------------------------------------------- query_message


def _make_query(qname: str, qtype: int) -> bytes:
    m = dns.message.make_query(dns.name.from_text(qname), qtype, use_edns=False)
    m.id = 0
    return m.to_wire()


@pytest.mark.parametrize("qname", [
    WEB, "Web.Shop.svc.cluster.local", "_http._tcp." + WEB, "a.", ".", "x" * 63 + ".com.",
    ("abcdefgh." * 28) + "a.",  # 254 characters: the longest name there is
    ("abcdefgh." * 28) + "a",  # 253 characters, relative: the longest without the dot
    "a\\.b.example.", "bücher.example.", "*.example.",  # these go through dnspython
])
@pytest.mark.parametrize("qtype", [wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SRV])
def test_query_message_is_what_dnspython_builds(qname: str, qtype: int) -> None:
    assert wire.query_message(qname, qtype) == _make_query(qname, qtype)


@pytest.mark.parametrize(("qname", "error"), [
    ("a..b.", dns.name.EmptyLabel), ("x" * 64 + ".com.", dns.name.LabelTooLong),
    ("abcdefgh." * 28 + "ab.", dns.name.NameTooLong), ("abcdefgh." * 28 + "ab", dns.name.NameTooLong),
])
def test_query_message_rejects_what_dnspython_rejects(qname: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        _make_query(qname, 1)
    with pytest.raises(wire.WireError, match=f"cannot be asked: {error.__name__}"):  # dnspython's reason, named
        wire.query_message(qname, 1)


@FUZZ
@given(qname=st.one_of(_name, _name.map(lambda n: n.rstrip(".")),
                       st.text(alphabet="ab-_.\\", max_size=40)), qtype=_QTYPES)
def test_query_message_agrees_with_dnspython(qname: str, qtype: int) -> None:
    try:
        expected = _make_query(qname, qtype)
    except dns.exception.DNSException as exc:
        with pytest.raises(wire.WireError, match=f"cannot be asked: {type(exc).__name__}"):
            wire.query_message(qname, qtype)
        return
    assert wire.query_message(qname, qtype) == expected


def test_txt_records_are_read_as_their_joined_strings() -> None:
    q = dns.message.make_query("dns-version.cluster.local.", "TXT", use_edns=False)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("dns-version.cluster.local.", 60, "IN", "TXT", '"1.1" ".0"'))
    assert wire.parse_answer(r.to_wire(), wire.TYPE_TXT)[2] == ["1.1.0"]
