"""The demo sandbox: the example inventory served for real on loopback, and the agent on it.

A DNS server answers for the inventory (with one wrong and one missing record), TCP
backends listen on every ClusterIP and ready endpoint (except one dead endpoint), and
the agent runs against them with its HTTP server up. Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.resources
import random
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator

from agent import settings as settings_mod
from agent.demo.dnsserver import DnsServer, records_from_inventory
from agent.inventory import manifests

ZONE = "cluster.local"
WRONG = {"search.shop.svc.cluster.local.": "127.0.10.99"}  # DNS answers a stale address
MISSING = ("reviews.shop.svc.cluster.local.",)  # DNS has no record at all
DEAD = {("127.0.20.24", 8080)}  # an endpoint whose process is gone


def inventory_path() -> str:
    return str(importlib.resources.files("agent.demo") / "inventory.yaml")


def relocate(address: str, block: int) -> str:
    """The demo's addresses live in 127.0.x.y; block N moves them to 127.N.x.y."""
    return address.replace("127.0.", f"127.{block}.", 1) if block else address


def write_inventory(path: str, block: int = 0) -> None:
    """A copy of the demo inventory with its addresses moved to `block`."""
    text = (importlib.resources.files("agent.demo") / "inventory.yaml").read_text()
    if block:
        text = text.replace(" 127.0.", f" 127.{block}.")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@contextlib.asynccontextmanager
async def sandbox(inventory_file: str, block: int = 0) -> AsyncIterator[DnsServer]:
    """Serve `inventory_file` (written with `block`) on loopback; yields the DNS server."""
    inventory = manifests.load_file(inventory_file).inventory
    records = records_from_inventory(inventory, ZONE)
    for name, addr in WRONG.items():
        records[name]["A"] = [relocate(addr, block)]
    for gone in MISSING:  # the name and everything under it (its SRV records)
        for name in [n for n in records if n == gone or n.endswith("." + gone)]:
            del records[name]
    server = DnsServer(records, zone=ZONE)
    await server.start("127.0.0.1", 0)
    listeners = []
    try:
        targets: set[tuple[str, int]] = set()
        for svc in inventory.services.values():
            for ip in svc.cluster_ips:
                if inventory.ready_endpoints(svc):  # like kube-proxy: no endpoint, nothing behind the VIP
                    targets.update((str(ip), p.port) for p in svc.ports if p.protocol == "TCP")
            for ep in inventory.ready_endpoints(svc):
                targets.update((str(ep.address), p.port) for p in ep.ports if p.protocol == "TCP" and p.port)
        dead = {(relocate(a, block), p) for a, p in DEAD}
        for addr, port in sorted(targets - dead):
            listeners.append(await asyncio.start_server(_accept, addr, port, reuse_address=True))
        yield server
    finally:
        for srv in listeners:
            srv.close()
        await server.stop()


def settings_for(dns_address: tuple[str, int], *, inventory_file: str, listen: str,
                 interval: float) -> settings_mod.Settings:
    host, port = dns_address
    return settings_mod.load(overrides={
        "inventory.file": inventory_file,
        "inventory.reload_seconds": 2.0,
        "dns.nameservers": (f"{host}:{port}",),
        "dns.cluster_domain": ZONE,
        "dns.ndots": 5,
        "dns.search": (),
        "dns.timeout_seconds": 1.0,
        "dns.query_budget_per_second": 500.0,
        "dns.query_budget_burst": 100,
        "scheduler.interval_seconds": interval,
        "tcp.endpoint_interval_seconds": 0.0,  # an edit to the inventory shows at the next sweep
        "shutdown.drain_seconds": 0.0,
        "listen": listen,
        # The demo's backends live on loopback, which tcp.deny_cidrs refuses by default.
        "tcp.deny_cidrs": (),
    })


@contextlib.asynccontextmanager
async def open_sandbox(inventory_file: str, *, prefer_default: bool = True) -> AsyncIterator[tuple[DnsServer, int]]:
    """A sandbox on the demo's usual addresses, or on another 127.N block if they are taken."""
    blocks = ([0] if prefer_default else []) + random.sample(range(1, 255), 8)
    for i, block in enumerate(blocks):
        write_inventory(inventory_file, block)
        try:
            cm = sandbox(inventory_file, block)
            server = await cm.__aenter__()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or i == len(blocks) - 1:
                raise
            continue
        try:
            yield server, block
        finally:
            await cm.__aexit__(None, None, None)
        return


async def main(*, listen: str, interval: float, duration: float) -> int:
    from agent import runner

    workdir = tempfile.mkdtemp(prefix="svcprobe-demo-")
    inventory_file = f"{workdir}/inventory.yaml"
    try:
        async with open_sandbox(inventory_file) as (server, block):
            if block:
                print(f"(the demo's usual addresses are in use; serving it on 127.{block}.0.0/16 instead)")
            s = settings_for(server.address, inventory_file=inventory_file, listen=listen, interval=interval)
            agent = runner.build(s)
            stop = asyncio.Event()

            def banner(host: str, port: int) -> None:
                base = f"http://{host}:{port}"
                ns = f"{server.address[0]}:{server.address[1]}"
                print(f"""
svcprobe demo is running: a small shop on loopback, some of it broken on purpose.
  DNS server      {ns} (zone {ZONE})
  inventory       {inventory_file} (edit it: the agent reloads it)
  metrics         {base}/metrics
  results (JSON)  {base}/api/v1/results?failing=true
  one Service     {base}/debug/probe?service=shop/search
  one-shot report SVCPROBE_TCP_DENY_CIDRS= svcprobe check --inventory {inventory_file} --nameserver {ns}
                  (the empty deny list lets it connect to the demo's loopback backends)
Broken on purpose: shop/search (wrong DNS answer), shop/reviews (missing DNS record),
shop/checkout (dead endpoint). shop/legacy has no ready endpoint: expected, no alarm.
{f"Stops after {duration:g}s." if duration else "Ctrl-C stops it."}
""", flush=True)

            async def timer() -> None:
                if duration:
                    await asyncio.sleep(duration)
                    stop.set()

            t = asyncio.create_task(timer())
            try:
                await agent.run(stop=stop, on_listening=banner)
            finally:
                t.cancel()
            failing = agent.store.failing_series()
            print(f"demo stopped after {agent.store.sweeps} sweep(s); failing series at the end:", file=sys.stderr)
            for key in failing:
                print("  " + " ".join(key), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
