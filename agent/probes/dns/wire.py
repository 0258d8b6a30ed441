"""The hot path of DNS messages: just enough wire format to ask and to check an answer.

dnspython decodes anything this reader refuses (and every answer shown in a trace) and
builds the queries for names that are not plain host names, but a full
`dns.message.from_wire` costs several times a UDP round trip on loopback, and
`dns.message.make_query` about a hundred, so plain queries are built and the records the
agent compares (A, AAAA, CNAME, PTR, SRV, TXT) are read here.
"""

from __future__ import annotations

import re
import socket
import struct

TYPE_A, TYPE_CNAME, TYPE_PTR, TYPE_TXT, TYPE_AAAA, TYPE_SRV = 1, 5, 12, 16, 28, 33
TYPE_CODES = {"A": TYPE_A, "CNAME": TYPE_CNAME, "PTR": TYPE_PTR, "TXT": TYPE_TXT, "AAAA": TYPE_AAAA,
              "SRV": TYPE_SRV}
FLAG_TC = 0x0200
FLAG_QR = 0x8000
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

_HEADER = struct.Struct("!HHHHHH")
_rr = struct.Struct("!HHIH").unpack_from  # type, class, ttl, rdlength
_ntop = socket.inet_ntop
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
# Address bytes -> text: the same Service and endpoint addresses come back every sweep.
_ADDRESS_TEXT: dict[bytes, str] = {}
_ADDRESS_TEXT_MAX = 65536


class WireError(ValueError):
    """A reply that is not a well-formed DNS message."""


def read_name(wire: bytes, offset: int) -> tuple[str, int]:
    """Decode a possibly compressed name; return it (absolute, lower-case) and the next offset."""
    labels: list[str] = []
    end = -1
    jumps = 0
    n = len(wire)
    while True:
        if offset >= n:
            raise WireError("name runs past the end of the message")
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= n:
                raise WireError("truncated compression pointer")
            if end < 0:
                end = offset + 2
            jumps += 1
            if jumps > 64:
                raise WireError("compression pointer loop")
            offset = ((length & 0x3F) << 8) | wire[offset + 1]
            continue
        if length & 0xC0:
            raise WireError("unknown label type")
        offset += 1
        if length == 0:
            break
        if offset + length > n:
            raise WireError("label runs past the end of the message")
        labels.append(wire[offset : offset + length].decode("ascii", "backslashreplace").lower())
        offset += length
    return ".".join(labels) + ".", (end if end >= 0 else offset)


def skip_name(wire: bytes, offset: int) -> int:
    n = len(wire)
    while True:
        if offset >= n:
            raise WireError("name runs past the end of the message")
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length & 0xC0:
            raise WireError("unknown label type")
        offset += 1 + length
        if length == 0:
            return offset


def header(wire: bytes) -> tuple[int, int, int, int]:
    """(id, flags, qdcount, ancount)."""
    if len(wire) < 12:
        raise WireError(f"reply of {len(wire)} bytes is shorter than a DNS header")
    qid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(wire)
    return qid, flags, qd, an


def _address_text(data: bytes) -> str:
    """An A/AAAA record's address as text (inet_ntop costs a few of these dict look-ups)."""
    if len(_ADDRESS_TEXT) >= _ADDRESS_TEXT_MAX:
        _ADDRESS_TEXT.clear()
    text = _ADDRESS_TEXT[data] = _ntop(_AF_INET if len(data) == 4 else _AF_INET6, data)
    return text


def parse_answer(wire: bytes, qtype: int, question_end: int = 0) -> tuple[int, int, list[str]]:
    """(rcode, flags, records of `qtype` in the answer section, as text).

    The records are those of the question's name or, when it has none, of the first name
    along its CNAME chain that has some (as dnspython's resolver and the C libraries read an
    answer): a record under any other name is ignored.
    SRV records come back as "port target" (priority and weight are not compared).
    `question_end`: the offset just past the question section, for a caller that has already
    matched the reply's one question (the engine does, byte for byte); used only when the
    header says there is exactly one question, so the question need not be walked again.
    """
    n = len(wire)
    if n < 12:
        raise WireError(f"reply of {n} bytes is shorter than a DNS header")
    flags = (wire[2] << 8) | wire[3]
    if not flags & FLAG_QR:
        raise WireError("message is a query, not a reply")
    if question_end and wire[4] == 0 and wire[5] == 1:
        offset = question_end
    else:
        offset = 12
        for _ in range((wire[4] << 8) | wire[5]):
            offset = skip_name(wire, offset) + 4
    records: list[str] = []
    owners: list[str] | None = None  # per record, once an owner is not simply the question
    cnames: dict[str, str] = {}
    for _ in range((wire[6] << 8) | wire[7]):
        owner = ""  # "": the question's name (a compression pointer to it, the usual case)
        if offset + 1 < n and wire[offset] == 0xC0 and wire[offset + 1] == 12:
            offset += 2
        else:
            owner, offset = read_name(wire, offset)
        if offset + 10 > n:
            raise WireError("answer record runs past the end of the message")
        rtype, _rclass, _ttl, rdlen = _rr(wire, offset)
        start = offset + 10
        offset = start + rdlen
        if offset > n:
            raise WireError("record data runs past the end of the message")
        if rtype == qtype:
            if qtype == TYPE_A or qtype == TYPE_AAAA:
                if rdlen != (4 if qtype == TYPE_A else 16):
                    raise WireError(f"{'A' if qtype == TYPE_A else 'AAAA'} record of {rdlen} bytes")
                data = wire[start:offset]
                text = _ADDRESS_TEXT.get(data)
                records.append(text if text is not None else _address_text(data))
            elif qtype == TYPE_CNAME or qtype == TYPE_PTR:
                records.append(read_name(wire, start)[0])
            elif qtype == TYPE_TXT:
                records.append(_txt(wire, start, offset))
            elif qtype == TYPE_SRV:
                if rdlen < 7:
                    raise WireError(f"SRV record of {rdlen} bytes")
                port = (wire[start + 4] << 8) | wire[start + 5]  # after priority and weight
                records.append(f"{port} {read_name(wire, start + 6)[0]}")
            if owner:  # not simply the question's name: remember whose it is
                if owners is None:
                    owners = [""] * (len(records) - 1)
                owners.append(owner)
            elif owners is not None:
                owners.append("")
        elif rtype == TYPE_CNAME:
            cname_owner = owner or read_name(wire, 12)[0]
            cnames.setdefault(cname_owner, read_name(wire, start)[0])
    if owners is None:
        return flags & 0x000F, flags, records
    return flags & 0x000F, flags, _owned(wire, records, owners, cnames, qtype)


def _txt(wire: bytes, start: int, end: int) -> str:
    """A TXT record's character-strings, joined (each is a length byte and that many bytes)."""
    parts: list[str] = []
    i = start
    while i < end:
        n = wire[i]
        if i + 1 + n > end:
            raise WireError("TXT string runs past its record")
        parts.append(wire[i + 1 : i + 1 + n].decode("utf-8", "backslashreplace"))
        i += 1 + n
    return "".join(parts)


def _owned(wire: bytes, records: list[str], owners: list[str], cnames: dict[str, str],
           qtype: int) -> list[str]:
    """The answer as dnspython's `resolve_chaining` finds it: the records of the first name
    along the CNAME chain from the question's name (at most 16 links) that has any."""
    qname = read_name(wire, 12)[0]
    by_owner: dict[str, list[str]] = {}
    for record, owner in zip(records, owners, strict=True):
        by_owner.setdefault(owner or qname, []).append(record)
    name = qname
    for _ in range(17):
        found = by_owner.get(name)
        if found is not None:
            return found
        target = cnames.get(name) if qtype != TYPE_CNAME else None
        if target is None:
            break
        name = target
    return []


def question_bytes(wire: bytes) -> bytes:
    """The question section of a one-question message, lower-cased for comparison."""
    end = skip_name(wire, 12) + 4
    return wire[12:end].lower()


_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?|\.")
_QUERY_HEADER = struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0)  # id 0, RD, one question


def query_message(qname: str, qtype: int) -> bytes:
    """A recursive query for (qname, qtype) with id 0 and no EDNS, byte for byte what
    `dns.message.make_query(qname, qtype, use_edns=False)` builds (the name taken as
    absolute). Plain host names are encoded here; dnspython does the rest (escapes, IDNA).
    Raises WireError for a name that cannot be asked (too long, an empty or long label)."""
    if len(qname.rstrip(".")) <= 253 and _PLAIN_NAME.fullmatch(qname):
        parts = [_QUERY_HEADER]
        for label in qname.split("."):
            if label:
                parts.append(bytes((len(label),)))
                parts.append(label.encode("ascii"))
        parts.append(b"\x00")
        parts.append(struct.pack("!HH", qtype, 1))
        return b"".join(parts)
    import dns.message
    import dns.name
    import dns.rdatatype

    try:
        msg = dns.message.make_query(dns.name.from_text(qname), dns.rdatatype.RdataType(qtype), use_edns=False)
    except Exception as exc:  # dnspython's NameTooLong, LabelTooLong, EmptyLabel, IDNA errors, ...
        raise WireError(f"cannot be asked: {exc.__class__.__name__}: {exc}") from None
    msg.id = 0
    return bytes(msg.to_wire())
