"""`listen: "[::]:PORT"` takes IPv4 as well (the chart's dual-stack values use it): a kubelet
or Prometheus reaching the pod's IPv4 address must get an answer."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp

from agent import runner, settings as settings_mod


async def test_listening_on_all_ipv6_addresses_answers_ipv4_too(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("apiVersion: v1\nkind: List\nitems: []\n")
    s = settings_mod.load(overrides={"dns.nameservers": ("127.0.0.1:9",), "inventory.file": str(inventory),
                                     "listen": "[::]:0"})
    agent = runner.build(dataclasses.replace(s, shutdown=dataclasses.replace(s.shutdown, drain_seconds=0.0)))
    stop = asyncio.Event()
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(agent.run(stop=stop, on_listening=lambda h, p: bound.set_result(p)))
    port = await asyncio.wait_for(bound, 10)
    try:
        async with aiohttp.ClientSession() as http:
            for host in ("127.0.0.1", "[::1]"):
                async with http.get(f"http://{host}:{port}/healthz") as r:
                    assert r.status == 200, host
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
