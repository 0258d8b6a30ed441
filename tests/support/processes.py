"""Processes a test starts and talks to over loopback HTTP: start with a log, wait for a
condition within a deadline (failing early if a process dies), stop with SIGTERM then SIGKILL."""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
DEADLINE = 120.0   # seconds; generous, only bounds a hang


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def http_body(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def start(args: list[str], log: pathlib.Path) -> subprocess.Popen[str]:
    """Start a process with its output in `log` (a pipe nobody reads could fill and block it)."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True,
                                cwd=log.parent)
    LOGS[proc.pid] = log
    return proc


LOGS: dict[int, pathlib.Path] = {}


def wait_for(what: str, probe: Callable[[], T | None], procs: list[subprocess.Popen[str]]) -> T:
    """Poll `probe` until it returns something truthy; fail at the deadline or if a process dies."""
    end = time.monotonic() + DEADLINE
    last: Exception | None = None
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                tail = LOGS[p.pid].read_text()[-3000:]
                pytest.fail(f"{LOGS[p.pid].name}: process exited {p.returncode} while waiting for {what}:\n{tail}")
        try:
            result = probe()
            if result:
                return result
        except OSError as exc:   # not listening yet
            last = exc
        time.sleep(0.5)
    pytest.fail(f"gave up waiting for {what} (last error: {last})")


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM (the agent's clean shutdown), then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
