"""The soak's short variant (90 s); the long one is `python -m tests.reliability.soak --minutes 30`.
See tests/reliability/soak.py for what is measured and the pass criteria."""

from __future__ import annotations

import json

import pytest

from tests.reliability import soak

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]


async def test_soak_short() -> None:
    summary = await soak.soak(seconds=90)
    print(json.dumps(summary, indent=2))
    assert summary["rewrites"] >= 20 and summary["sweeps"] >= 10
    assert not soak.problems(summary), summary
