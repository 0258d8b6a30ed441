"""Helper processes the fault tests start inside their network namespace.

    python -m tests.reliability.nsd serve --listen IP:PORT --inventory FILE [--hold IP:PORT ...]
    python -m tests.reliability.nsd relay --listen IP:PORT --upstream IP:PORT --delay SECONDS

`serve` answers for the inventory with the demo's authoritative DNS server (UDP and TCP) and
keeps TCP listeners that accept connections and then hold them, never reading or writing
(backends that "accept and hang"). `relay` forwards UDP DNS queries to `--upstream` after
`--delay` seconds (a slow path in front of a healthy server). Both print "ready" once listening
and run until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from agent.demo.dnsserver import DnsServer, records_from_inventory
from agent.inventory import manifests


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve(args: argparse.Namespace) -> None:
    inventory = manifests.load_file(args.inventory).inventory
    server = DnsServer(records_from_inventory(inventory, "cluster.local"), zone="cluster.local")
    await server.start(*_hostport(args.listen))
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never read, never write, never close
        if len(held) > 10000:  # bounded: the oldest go
            held.pop(0).close()

    for spec in args.hold:
        await asyncio.start_server(hold, *_hostport(spec), reuse_address=True, backlog=1024)
    print("ready", flush=True)
    await asyncio.Event().wait()


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        asyncio.get_running_loop().create_task(self._forward(data, addr))

    async def _forward(self, data: bytes, addr: tuple[str, int]) -> None:
        await asyncio.sleep(self.delay)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()

        class Once(asyncio.DatagramProtocol):
            def datagram_received(self, d: bytes, a: tuple[str, int]) -> None:
                if not reply.done():
                    reply.set_result(d)

        transport, _ = await loop.create_datagram_endpoint(Once, remote_addr=self.upstream)
        try:
            transport.sendto(data)
            answer = await asyncio.wait_for(reply, 5)
            if self.transport is not None:
                self.transport.sendto(answer, addr)
        except TimeoutError:
            pass
        finally:
            transport.close()


async def relay(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: _Relay(_hostport(args.upstream), args.delay),
                                        local_addr=_hostport(args.listen))
    print("ready", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="nsd")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--inventory", required=True)
    s.add_argument("--hold", action="append", default=[])
    r = sub.add_parser("relay")
    r.add_argument("--listen", required=True)
    r.add_argument("--upstream", required=True)
    r.add_argument("--delay", type=float, default=0.0)
    args = p.parse_args(argv)
    asyncio.run(serve(args) if args.cmd == "serve" else relay(args))


if __name__ == "__main__":
    main(sys.argv[1:])
