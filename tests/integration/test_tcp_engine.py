"""The TCP engine against real loopback sockets."""

from __future__ import annotations

import asyncio
import socket

import pytest

from agent.probes import tcp
from tests.support.listeners import full_backlog


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def test_ok_against_a_listener() -> None:
    accepted = asyncio.Event()

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await tcp.connect("127.0.0.1", port, timeout=2.0)
        await asyncio.wait_for(accepted.wait(), 2.0)
    finally:
        server.close()
        await server.wait_closed()
    assert outcome.result == "ok"
    assert outcome.duration > 0
    assert outcome.detail == ""


async def test_refused_when_nothing_listens() -> None:
    port = _free_port()
    outcome = await tcp.connect("127.0.0.1", port, timeout=2.0)
    assert outcome.result == "refused"
    assert f"127.0.0.1:{port}" in outcome.detail


async def test_timeout_when_the_handshake_never_completes() -> None:
    # A listener that never accepts, with its backlog already full: the kernel drops the SYN.
    held = full_backlog("127.0.0.1")
    port = held[0].getsockname()[1]
    try:
        await asyncio.sleep(0.05)
        outcome = await tcp.connect("127.0.0.1", port, timeout=0.3)
    finally:
        for s in held:
            s.close()
    assert outcome.result == "timeout"
    assert outcome.duration >= 0.3
    assert "within 0.3s" in outcome.detail


async def test_ipv6_refused_names_the_address_in_brackets() -> None:
    try:
        port = _free_port("::1")
    except OSError as exc:  # pragma: no cover - host without ::1
        pytest.skip(f"no IPv6 loopback: {exc}")
    outcome = await tcp.connect("::1", port, timeout=2.0)
    assert outcome.result == "refused"
    assert f"[::1]:{port}" in outcome.detail
