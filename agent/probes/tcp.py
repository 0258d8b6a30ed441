"""The TCP engine: one non-blocking connect per probe, classified, then closed at once.

No stream objects and no `asyncio.timeout` block: a bare socket, `connect_ex`, a writer
callback that takes the completion time the moment the kernel reports it, and a plain
timer. A probe only needs to know whether the handshake completed and how long it took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import socket
import time
from typing import Any

from agent.checks import TcpResult

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}
_IN_PROGRESS = {errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY}


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    result: TcpResult  # ok, refused, timeout, unreachable, error
    duration: float
    detail: str = ""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def _classify(err: int, secs: float, where: str) -> Connect:
    if err == 0:
        return Connect(TcpResult.OK, secs)
    if err == errno.ECONNREFUSED:
        return Connect(TcpResult.REFUSED, secs, f"connection refused by {where}")
    if err in _UNREACHABLE:
        return Connect(TcpResult.UNREACHABLE, secs, f"{where} unreachable: {os.strerror(err)}")
    if err == errno.ETIMEDOUT:  # the kernel gave up before our timer did
        return Connect(TcpResult.TIMEOUT, secs, f"no answer from {where} ({os.strerror(err)})")
    return Connect(TcpResult.ERROR, secs, f"{where}: {os.strerror(err)}")


async def connect(address: str, port: int, *, timeout: float) -> Connect:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    where = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
    loop = asyncio.get_running_loop()
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # EMFILE/ENFILE, ENOBUFS: a result, not a crash of the check
        return Connect(TcpResult.ERROR, 0.0, f"{where}: cannot open a socket: {exc.strerror or exc}")
    try:
        sock.setblocking(False)
        t0 = time.perf_counter_ns()
        try:
            err = sock.connect_ex((address, port))
        except OSError as exc:  # e.g. an address the family cannot take
            return _classify(exc.errno or errno.EINVAL, (time.perf_counter_ns() - t0) / 1e9, where)
        if err not in _IN_PROGRESS:
            return _classify(err, (time.perf_counter_ns() - t0) / 1e9, where)
        fd = sock.fileno()
        fut: asyncio.Future[int] = loop.create_future()

        def writable() -> None:
            if not fut.done():
                fut.set_result(time.perf_counter_ns())

        loop.add_writer(fd, writable)
        timer = loop.call_later(timeout, _expire, fut)
        try:
            done_ns = await fut
        except TimeoutError:
            return Connect(TcpResult.TIMEOUT, (time.perf_counter_ns() - t0) / 1e9,
                           f"no answer from {where} within {timeout:g}s")
        finally:
            timer.cancel()
            loop.remove_writer(fd)
        return _classify(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), (done_ns - t0) / 1e9, where)
    finally:
        sock.close()
