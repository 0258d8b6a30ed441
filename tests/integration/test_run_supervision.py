"""`svcprobe run` fails loudly: a task that dies stops the agent with its traceback logged
and a non-zero exit, so a DaemonSet pod restarts (CrashLoopBackOff) instead of showing
Completed with the cause lost."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from agent import runner, settings as settings_mod

EMPTY_INVENTORY = "apiVersion: v1\nkind: List\nitems: []\n"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SVCPROBE_")}
# Loopback, and never asked: the inventory has no Service, so there is nothing to resolve.
NAMESERVER = "127.0.0.1:9"


def agent_settings(inventory: Path) -> settings_mod.Settings:
    s = settings_mod.load(overrides={"dns.nameservers": (NAMESERVER,), "inventory.file": str(inventory),
                                     "listen": "127.0.0.1:0", "scheduler.interval_seconds": 0.2})
    return dataclasses.replace(s, shutdown=dataclasses.replace(s.shutdown, drain_seconds=0.0))


async def test_a_cancelled_task_stops_the_agent_with_task_died(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(EMPTY_INVENTORY)
    agent = runner.build(agent_settings(inventory))
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    run = asyncio.create_task(agent.run(on_listening=lambda h, p: listening.set_result(f"http://{h}:{p}")))
    base = await asyncio.wait_for(listening, 10)
    while agent.store.sweeps < 1:
        await asyncio.sleep(0.05)
    victim = next(t for t in asyncio.all_tasks() if t.get_name() == "svcprobe-scheduler")
    with caplog.at_level(logging.ERROR, logger="agent.runner"):
        victim.cancel()
        with pytest.raises(runner.TaskDied, match="svcprobe-scheduler was cancelled"):
            await asyncio.wait_for(run, 10)
    assert "svcprobe-scheduler was cancelled; stopping the agent" in caplog.text
    # Everything else stopped with it: no task of the agent left, the HTTP server closed.
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("svcprobe-")]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{base}/healthz")


async def test_a_crashing_task_makes_svcprobe_run_exit_non_zero_with_its_traceback(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(EMPTY_INVENTORY)
    # The real command line in a real process; only the inventory source's loop is replaced
    # by one that fails after the agent is up (a stand-in for any bug in a long-running task).
    script = textwrap.dedent("""
        import asyncio, sys
        from agent import cli
        from agent.discovery.static import StaticSource

        async def failing_run(self):
            await asyncio.sleep(0.5)
            raise RuntimeError("injected failure in the inventory loop")

        StaticSource.run = failing_run
        sys.exit(cli.main(sys.argv[1:]))
    """)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, "run", "--inventory", str(inventory), "--nameserver", NAMESERVER,
        "--listen", "127.0.0.1:0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**CLEAN_ENV, "SVCPROBE_SHUTDOWN_DRAIN_SECONDS": "0"})
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    log = err.decode()
    assert proc.returncode == 1, log
    assert "svcprobe-inventory died; stopping the agent" in log
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: injected failure in the inventory loop" in log
    assert "because a task ended: svcprobe-inventory died: RuntimeError" in log
