"""A recording, dropping DNS forwarder on port 53 of a loopback address, for the libc tests:
it logs each name a client asks, in order, and never answers names under `drop` (a server
that does not answer, for timeouts mid-walk)."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterable

import dns.exception
import dns.message
import dns.name
import dns.rdatatype


class RecordingForwarder:
    """UDP DNS forwarder on ``address`` port 53: relays each query to ``upstream`` and the answer
    back, logging ``(qname, qtype)`` in order; queries for names under ``drop`` are logged and
    never answered. One query at a time (the clients ask one at a time)."""

    def __init__(self, address: str, upstream: tuple[str, int], drop: Iterable[str] = ()) -> None:
        self.address = address
        self.upstream = upstream
        self.drop = [dns.name.from_text(name) for name in drop]
        self._log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((address, 53))
        except OSError:
            self._sock.close()
            raise
        self._thread = threading.Thread(target=self._serve, name="dns-forwarder", daemon=True)
        self._thread.start()

    def take(self) -> list[tuple[str, str]]:
        """The queries logged since the last call (consecutive repeats, i.e. retries, once).
        Waits (a little) until no query is queued or being relayed, so none leaks into the next."""
        for _ in range(50):
            ready, _, _ = select.select([self._sock], [], [], 0)
            if not ready and not self._busy.is_set():
                break
            time.sleep(0.02)
        with self._lock:
            log, self._log = self._log, []
        return [item for i, item in enumerate(log) if i == 0 or log[i - 1] != item]

    def names(self) -> list[str]:
        return [name for name, _ in self.take()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.connect(self.upstream)
            up.settimeout(2.0)
            while not self._stop.is_set():
                ready, _, _ = select.select([self._sock], [], [], 0.1)
                if not ready:
                    continue
                self._busy.set()
                try:
                    self._relay(up)
                finally:
                    self._busy.clear()

    def _relay(self, up: socket.socket) -> None:
        data, client = self._sock.recvfrom(65535)
        try:
            question = dns.message.from_wire(data).question[0]
        except (dns.exception.DNSException, IndexError):
            return
        with self._lock:
            self._log.append((question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)))
        if any(question.name.is_subdomain(name) for name in self.drop):
            return
        try:
            up.send(data)
            for _ in range(10):  # skip a late answer to an earlier query
                answer = up.recv(65535)
                if answer[:2] == data[:2]:
                    self._sock.sendto(answer, client)
                    return
        except OSError:  # upstream timed out: the client times out too
            return
