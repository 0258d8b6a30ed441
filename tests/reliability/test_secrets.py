"""The agent never reveals its API credentials: `svcprobe run` with a bearer-token kubeconfig
(inline `token`, and `tokenFile`) against the fake API server, at debug log level, through API
errors (500, 429 + Retry-After, 401, 410, a garbage watch line, aborted streams). Its whole log,
/metrics, /api/v1/results, /debug/probe, /readyz and / must not contain the token (nor its
base64 form, nor an Authorization header). The fake API checks the token, so a synced agent
demonstrably used it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from agent.demo.dnsserver import DnsServer, records_from_inventory
from agent.inventory import manifests
from tests.reliability.common import ZONE, wait_for
from tests.support.kubeapi import FakeKubeAPI, endpoint_slice, service

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]
TOKEN = "svcprobe-secret-7f3c9e2a41b8d605-do-not-leak"


def _kubeconfig(path: Path, server: str, token_file: Path | None) -> Path:
    user = {"tokenFile": str(token_file)} if token_file else {"token": TOKEN}
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"}))
    return path


@pytest.mark.parametrize("via", ["token", "tokenFile"])
async def test_token_never_logged_or_served(tmp_path: Path, via: str) -> None:
    token_file = None
    if via == "tokenFile":
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
    async with FakeKubeAPI(token=TOKEN) as api:
        for i in range(3):
            api.put("services", service("shop", f"web{i}", cluster_ip=f"127.0.0.{50 + i}"))
            api.put("endpointslices", endpoint_slice("shop", f"web{i}-x", f"web{i}", [f"127.0.1.{50 + i}"]))
        inv = manifests.parse_documents(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {**o, "apiVersion": (r.startswith("end") and "discovery.k8s.io/v1") or "v1",
             "kind": (r.startswith("end") and "EndpointSlice") or "Service"}
            for r in ("services", "endpointslices") for o in api.objects(r).values()]})).inventory
        dns = DnsServer(records_from_inventory(inv, ZONE), zone=ZONE)
        host, port = await dns.start("127.0.0.1", 0)
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps({
            "kubernetes": {"kubeconfig": str(_kubeconfig(tmp_path / "kubeconfig", api.url, token_file))},
            "dns": {"nameservers": [f"{host}:{port}"], "cluster_domain": ZONE, "search": [], "ndots": 5,
                    "timeout_seconds": 0.3},
            "tcp": {"enabled": False},
            "scheduler": {"interval_seconds": 1.0},
            "shutdown": {"drain_seconds": 0.0},
            "listen": "127.0.0.1:0", "log_level": "debug"}))
        log_path = tmp_path / "agent.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        served: list[str] = []
        try:
            def listening() -> str | None:
                m = re.search(r"listening on ([\d.]+):(\d+)", log_path.read_text())
                return f"http://{m.group(1)}:{m.group(2)}" if m else None
            await wait_for(lambda: listening() or proc.poll() is not None, "the agent to listen", 30)
            base = listening()
            assert base, log_path.read_text()[-2000:]
            async with aiohttp.ClientSession() as http:
                async def get(path: str) -> tuple[int, str]:
                    async with http.get(base + path) as resp:
                        text = await resp.text()
                        served.append(text)
                        return resp.status, text

                async def ready() -> bool:
                    return (await get("/readyz"))[0] == 200
                await wait_for(ready, "the agent to sync with the API (so it used the token)", 30)
                # API faults exercise the error and retry paths, which are where secrets leak.
                api.fail("watch", status=500, times=2)
                api.fail("any", status=429, retry_after="1", times=2)
                api.fail("watch", status=401, times=1)
                api.close_watches(abort=True)
                await asyncio.sleep(1.5)
                api.send_raw("services", b"{not json at all\n")
                api.expire()
                await asyncio.sleep(1.5)
                api.put("services", service("shop", "web9", cluster_ip="127.0.0.59"))
                async def has_web9() -> bool:
                    return "web9" in (await get("/api/v1/results?namespace=shop&service=web9"))[1]
                await wait_for(has_web9, "the agent to recover and see a new Service", 30)
                for path in ("/", "/metrics", "/api/v1/results", "/debug/probe?service=shop/web0", "/readyz"):
                    await get(path)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            await dns.stop()
        logs = log_path.read_text()
        assert "DEBUG" in logs and "listening on" in logs  # the log we grep is the full debug log
        assert "HTTP 500" in logs and "HTTP 401" in logs  # and the error paths did run
        assert any(r.authorized and r.status == 200 for r in api.requests)
        secrets = [TOKEN, TOKEN[8:24], base64.b64encode(TOKEN.encode()).decode()]
        for where, text in [("log", logs), *((f"response {i}", t) for i, t in enumerate(served))]:
            for secret in secrets:
                assert secret not in text, f"the token appears in the {where}"
            assert not re.search(r"authorization:|bearer ", text, re.I), f"credentials header in the {where}"
