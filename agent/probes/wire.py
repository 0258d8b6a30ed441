"""The hot path of DNS answers: just enough wire-format reading to check an answer.

dnspython builds the queries and decodes anything this reader refuses (and every answer
shown in a trace), but a full `dns.message.from_wire` costs several times a UDP round trip
on loopback, so the records the agent compares (A, AAAA, CNAME, SRV) are read here.
"""

from __future__ import annotations

import socket
import struct

TYPE_A, TYPE_CNAME, TYPE_AAAA, TYPE_SRV = 1, 5, 28, 33
TYPE_CODES = {"A": TYPE_A, "CNAME": TYPE_CNAME, "AAAA": TYPE_AAAA, "SRV": TYPE_SRV}
FLAG_TC = 0x0200
FLAG_QR = 0x8000
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_SRV = struct.Struct("!HHH")


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


def parse_answer(wire: bytes, qtype: int) -> tuple[int, int, list[str]]:
    """(rcode, flags, records of `qtype` in the answer section, as text).

    SRV records come back as "port target" (priority and weight are not compared).
    """
    _qid, flags, qdcount, ancount = header(wire)
    if not flags & FLAG_QR:
        raise WireError("message is a query, not a reply")
    rcode = flags & 0x000F
    offset = 12
    for _ in range(qdcount):
        offset = skip_name(wire, offset) + 4
    records: list[str] = []
    n = len(wire)
    for _ in range(ancount):
        offset = skip_name(wire, offset)
        if offset + 10 > n:
            raise WireError("answer record runs past the end of the message")
        rtype, _rclass, _ttl, rdlen = _RR.unpack_from(wire, offset)
        offset += 10
        if offset + rdlen > n:
            raise WireError("record data runs past the end of the message")
        if rtype == qtype:
            if rtype == TYPE_A:
                if rdlen != 4:
                    raise WireError(f"A record of {rdlen} bytes")
                records.append(socket.inet_ntop(socket.AF_INET, wire[offset : offset + 4]))
            elif rtype == TYPE_AAAA:
                if rdlen != 16:
                    raise WireError(f"AAAA record of {rdlen} bytes")
                records.append(socket.inet_ntop(socket.AF_INET6, wire[offset : offset + 16]))
            elif rtype == TYPE_CNAME:
                records.append(read_name(wire, offset)[0])
            elif rtype == TYPE_SRV:
                if rdlen < 7:
                    raise WireError(f"SRV record of {rdlen} bytes")
                _prio, _weight, port = _SRV.unpack_from(wire, offset)
                records.append(f"{port} {read_name(wire, offset + 6)[0]}")
        offset += rdlen
    return rcode, flags, records


def question_bytes(wire: bytes) -> bytes:
    """The question section of a one-question message, lower-cased for comparison."""
    end = skip_name(wire, 12) + 4
    return wire[12:end].lower()
