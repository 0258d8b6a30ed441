"""A small authoritative DNS server over UDP and TCP, with fault injection.

It serves the demo sandbox and, in tests, the faults a real server cannot produce on
demand: dropped, delayed, truncated, garbage, SERVFAIL and REFUSED replies. It answers
like an authoritative server for every name it is asked: records it has, NODATA for names
that exist without that type (including empty non-terminals such as `ns.svc.<zone>`),
NXDOMAIN otherwise; without EDNS, a reply over 512 bytes goes out truncated over UDP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import struct
from collections.abc import Iterable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from agent import model

log = logging.getLogger(__name__)

Records = dict[str, dict[str, list[str]]]  # name (absolute, lower) -> type -> rdata texts


@dataclasses.dataclass
class Fault:
    """What to do with queries for one name (or, as `default_fault`, for all)."""

    kind: str  # drop, delay, servfail, refused, truncate, garbage, malformed
    seconds: float = 0.0  # for delay


UPSTREAM_ADDRESS = "198.18.255.254"


def add(records: Records, name: str, rtype: str, rdata: str) -> None:
    values = records.setdefault(name.lower(), {}).setdefault(rtype, [])
    if rdata not in values:
        values.append(rdata)


def records_from_inventory(inventory: model.Inventory, zone: str) -> Records:
    """The records CoreDNS's kubernetes plugin serves for these Services (spec subset)."""
    records: Records = {}
    add(records, f"dns-version.{zone}.", "TXT", '"1.1.0"')  # the DNS specification's schema version
    for svc in inventory.services.values():
        base = f"{svc.name}.{svc.namespace}.svc.{zone}."
        if svc.type is model.ServiceType.EXTERNAL_NAME:
            add(records, base, "CNAME", svc.external_name + ".")
            if not svc.external_name.endswith(f".{zone}") and not svc.external_name.replace(".", "").isdigit():
                # What CoreDNS's upstream would give for the target: some address (data only,
                # nothing connects to it).
                add(records, svc.external_name + ".", "A", UPSTREAM_ADDRESS)
            continue
        ready = inventory.ready_endpoints(svc)
        if svc.headless:
            for ep in ready:
                rtype = "A" if ep.address.version == 4 else "AAAA"
                add(records, base, rtype, str(ep.address))
                dashed = str(ep.address).replace(".", "-").replace(":", "-")
                name = f"{ep.hostname or dashed}.{base}"
                add(records, name, rtype, str(ep.address))
                add(records, ep.address.reverse_pointer + ".", "PTR", name)
        else:
            for ip in svc.cluster_ips:
                add(records, base, "A" if ip.version == 4 else "AAAA", str(ip))
                add(records, ip.reverse_pointer + ".", "PTR", base)
        named = [(p.name, p.protocol, p.port) for p in svc.ports if p.name]
        if svc.headless:  # named ports only the slices list are served too
            named += sorted({(p.name, p.protocol, 0) for ep in ready for p in ep.ports if p.name}
                            - {(n, proto, 0) for n, proto, _ in named})
        for port_name, protocol, port in named:
            srv_name = f"_{port_name}._{protocol.lower()}.{base}"
            if not svc.headless:
                add(records, srv_name, "SRV", f"0 100 {port} {base}")
                continue
            for ep in ready:
                dashed = str(ep.address).replace(".", "-").replace(":", "-")
                target = f"{ep.hostname or dashed}.{base}"
                for ep_port in ep.ports:
                    if ep_port.name == port_name and ep_port.protocol == protocol and ep_port.port:
                        add(records, srv_name, "SRV", f"0 100 {ep_port.port} {target}")
    return records


class DnsServer:
    def __init__(self, records: Records, *, zone: str = "cluster.local", ttl: int = 5) -> None:
        self.records = records
        self.zone = dns.name.from_text(zone)
        self.ttl = ttl
        self.faults: dict[str, Fault] = {}
        self.default_fault: Fault | None = None
        self.queries: list[tuple[str, str, str]] = []  # (qname, qtype, transport), for tests
        self.udp_sources: set[tuple[str, int]] = set()  # client addresses seen over UDP
        self.address: tuple[str, int] = ("", 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._parents: set[str] = set()
        self._index()

    def _index(self) -> None:
        self._parents = set()
        for name in self.records:
            labels = name.rstrip(".").split(".")
            for i in range(1, len(labels)):
                self._parents.add(".".join(labels[i:]) + ".")

    def set_records(self, records: Records) -> None:
        self.records = records
        self._index()

    # -- answering ------------------------------------------------------------------------
    def _soa(self) -> dns.rrset.RRset:
        return dns.rrset.from_text(self.zone, self.ttl, "IN", "SOA",
                                   f"ns.dns.{self.zone} hostmaster.{self.zone} 1 7200 1800 86400 {self.ttl}")

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        if len(query.question) != 1:
            resp.set_rcode(dns.rcode.FORMERR)
            return resp
        q = query.question[0]
        name = q.name.to_text().lower()
        qtype = dns.rdatatype.to_text(q.rdtype)
        seen = 0
        while True:
            have = self.records.get(name)
            if have is None:
                if name in self._parents:
                    resp.authority.append(self._soa())
                else:
                    resp.set_rcode(dns.rcode.NXDOMAIN)
                    resp.authority.append(self._soa())
                return resp
            if qtype in have:
                resp.answer.append(dns.rrset.from_text_list(name, self.ttl, "IN", qtype, have[qtype]))
                return resp
            if "CNAME" in have and seen < 8:
                target = have["CNAME"][0]
                resp.answer.append(dns.rrset.from_text_list(name, self.ttl, "IN", "CNAME", [target]))
                name, seen = target.lower(), seen + 1
                if name not in self.records:
                    return resp  # target outside what we serve: the CNAME alone
                continue
            resp.authority.append(self._soa())
            return resp

    def _fault_for(self, wire: bytes) -> tuple[Fault | None, dns.message.Message | None]:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None, None
        if query.question:
            q = query.question[0]
            self.queries.append((q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype), ""))
            fault = self.faults.get(q.name.to_text().lower(), self.default_fault)
            return fault, query
        return self.default_fault, query

    async def handle(self, wire: bytes, *, tcp: bool) -> bytes | None:
        fault, query = self._fault_for(wire)
        if query is None:
            if len(wire) >= 12:  # a header we can echo: FORMERR, as servers do
                return wire[:2] + struct.pack("!HHHHH", 0x8001, 0, 0, 0, 0)
            return None
        if self.queries:
            n, t, _ = self.queries[-1]
            self.queries[-1] = (n, t, "tcp" if tcp else "udp")
        if fault is not None:
            if fault.kind == "drop":
                return None
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "garbage":
                return wire[:2] + os.urandom(23)
            elif fault.kind == "malformed":  # right id and question, then a record cut short
                raw = dns.message.make_response(query).to_wire()
                return raw[:6] + struct.pack("!H", 1) + raw[8:] + b"\xc0\x0c\x00\x01"
            elif fault.kind in ("servfail", "refused"):
                failure = dns.message.make_response(query)
                failure.set_rcode(dns.rcode.SERVFAIL if fault.kind == "servfail" else dns.rcode.REFUSED)
                return bytes(failure.to_wire())
            elif fault.kind == "truncate" and not tcp:
                truncated = dns.message.make_response(query)
                truncated.flags |= dns.flags.TC
                return bytes(truncated.to_wire())
        resp = self.answer(query)
        limit = 65535 if tcp else 512
        try:
            return bytes(resp.to_wire(max_size=limit))
        except dns.exception.TooBig:
            short = dns.message.make_response(query)
            short.flags |= dns.flags.TC | dns.flags.AA
            return bytes(short.to_wire())

    # -- transports -----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on UDP and TCP on the same port (an ephemeral one by default)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        last_error: OSError | None = None
        for _ in range(20):
            udp_transport, _proto = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port), family=family)
            bound = udp_transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound, family=family,
                                                       reuse_address=True)
            except OSError as exc:  # the TCP side of that port is taken: try another
                udp_transport.close()
                last_error = exc
                if port:
                    raise
                continue
            self._udp = udp_transport
            self.address = (host, bound)
            return self.address
        raise last_error or OSError("no free port for the DNS server")

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = await self.handle(await reader.readexactly(length), tcp=True)
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.udp_sources.add(addr)
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.server.handle(data, tcp=False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


def merge(*parts: Mapping[str, Mapping[str, Iterable[str]]]) -> Records:
    out: Records = {}
    for part in parts:
        for name, types in part.items():
            for rtype, values in types.items():
                for v in values:
                    add(out, name, rtype, v)
    return out
