"""The TCP engine: one non-blocking connect per probe, classified, then closed at once.

No stream objects: a bare socket and `loop.sock_connect` under a timer, because a probe
only needs to know whether the handshake completed and how long it took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
import time

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    result: str  # ok, refused, timeout, unreachable, error
    duration: float
    detail: str = ""


async def connect(address: str, port: int, *, timeout: float) -> Connect:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    where = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
    t0 = time.perf_counter_ns()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (address, port))
        return Connect("ok", (time.perf_counter_ns() - t0) / 1e9)
    except TimeoutError:
        return Connect("timeout", (time.perf_counter_ns() - t0) / 1e9, f"no answer from {where} within {timeout:g}s")
    except ConnectionRefusedError:
        return Connect("refused", (time.perf_counter_ns() - t0) / 1e9, f"connection refused by {where}")
    except OSError as exc:
        secs = (time.perf_counter_ns() - t0) / 1e9
        if exc.errno in _UNREACHABLE:
            return Connect("unreachable", secs, f"{where} unreachable: {exc.strerror}")
        return Connect("error", secs, f"{where}: {exc.strerror or exc}")
    finally:
        sock.close()
