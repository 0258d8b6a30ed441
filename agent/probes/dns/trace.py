"""What the debug view shows of a lookup: one entry per query, and dnspython's reading of
a reply (a second opinion on bytes our own parser rejected)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.message

from agent.probes.dns.resolution import Server, server_label


def record(trace: list[dict[str, Any]], qname: str, qtype: str, server: Server, transport: str,
           rcode: str, records: Sequence[str], rtt: float, *, reply: bytes | None = None) -> None:
    entry: dict[str, Any] = {
        "qname": qname,
        "qtype": qtype,
        "server": server_label(server),
        "transport": transport,
        "rcode": rcode,
        "records": list(records),
        "duration_seconds": round(rtt, 6),
    }
    if reply is not None:
        try:
            entry["reply"] = dns.message.from_wire(reply).to_text()
        except Exception as exc:
            entry["reply"] = f"<undecodable: {exc}>"
    trace.append(entry)


def dnspython_opinion(reply: bytes) -> str:
    """Why dnspython rejects `reply` (" (FormError: ...)"), or "" when it reads it."""
    try:
        dns.message.from_wire(reply)
    except dns.exception.DNSException as exc:
        return f" ({exc.__class__.__name__}: {exc})"
    except Exception as exc:
        return f" ({exc.__class__.__name__})"
    return ""
