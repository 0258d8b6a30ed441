"""Loopback listeners that make a TCP connect time out, as a dropped SYN does on a network."""

from __future__ import annotations

import socket


def full_backlog(address: str, port: int = 0, *, fill: int = 4) -> list[socket.socket]:
    """A listener on address:port that never accepts, its accept queue already full (`fill`
    pending connects): the kernel drops further SYNs. Returns the listener first, then the
    fillers; close them all when done."""
    listener = socket.socket()
    listener.bind((address, port))
    listener.listen(0)
    held = [listener]
    for _ in range(fill):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(listener.getsockname())
        held.append(c)
    return held
