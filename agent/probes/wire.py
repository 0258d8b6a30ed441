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
_ntop = socket.inet_ntop
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6


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


def parse_answer(wire: bytes, qtype: int, question_end: int = 0) -> tuple[int, int, list[str]]:
    """(rcode, flags, records of `qtype` in the answer section, as text).

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
    ancount = (wire[6] << 8) | wire[7]
    if question_end and wire[4] == 0 and wire[5] == 1:
        offset = question_end
    else:
        offset = 12
        for _ in range((wire[4] << 8) | wire[5]):
            offset = skip_name(wire, offset) + 4
    records: list[str] = []
    for _ in range(ancount):
        if offset < n and wire[offset] >= 0xC0:  # the usual owner: one compression pointer
            offset += 2
        else:
            offset = skip_name(wire, offset)
        if offset + 10 > n:
            raise WireError("answer record runs past the end of the message")
        start = offset + 10
        end = start + ((wire[offset + 8] << 8) | wire[offset + 9])
        if end > n:
            raise WireError("record data runs past the end of the message")
        if ((wire[offset] << 8) | wire[offset + 1]) == qtype:
            if qtype == TYPE_A:
                if end - start != 4:
                    raise WireError(f"A record of {end - start} bytes")
                records.append(_ntop(_AF_INET, wire[start:end]))
            elif qtype == TYPE_AAAA:
                if end - start != 16:
                    raise WireError(f"AAAA record of {end - start} bytes")
                records.append(_ntop(_AF_INET6, wire[start:end]))
            elif qtype == TYPE_CNAME:
                records.append(read_name(wire, start)[0])
            elif qtype == TYPE_SRV:
                if end - start < 7:
                    raise WireError(f"SRV record of {end - start} bytes")
                port = (wire[start + 4] << 8) | wire[start + 5]  # after priority and weight
                records.append(f"{port} {read_name(wire, start + 6)[0]}")
        offset = end
    return flags & 0x000F, flags, records


def question_bytes(wire: bytes) -> bytes:
    """The question section of a one-question message, lower-cased for comparison."""
    end = skip_name(wire, 12) + 4
    return wire[12:end].lower()
