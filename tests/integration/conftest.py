"""Fixtures for the integration tier: a real authoritative DNS server (knotd) on loopback.

- ``knot_factory`` (per test): ``knot_factory(zones, **KnotServer kwargs) -> KnotServer``,
  started; every server it made is stopped after the test.
- ``knot_server`` (per module): one KnotServer serving the module's ``KNOT_ZONES`` (a dict of
  zone name -> zone text, or a function returning one). A test that reloads it should put the
  module's zones back (``knot_server.reload(KNOT_ZONES)``) or use ``knot_factory`` instead.

See tests/support/knot.py for the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.knot import KnotServer


@pytest.fixture
def knot_factory() -> Iterator[Callable[..., KnotServer]]:
    servers: list[KnotServer] = []

    def make(zones, **kwargs) -> KnotServer:
        server = KnotServer(zones, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def knot_server(request: pytest.FixtureRequest) -> Iterator[KnotServer]:
    zones = getattr(request.module, "KNOT_ZONES", None)
    if zones is None:
        pytest.fail(f"{request.module.__name__} uses knot_server but defines no KNOT_ZONES")
    if callable(zones):
        zones = zones()
    with KnotServer(zones) as server:
        yield server
