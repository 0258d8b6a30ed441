"""Fixtures for the unit tier (builders live in tests/support/builders.py)."""

from __future__ import annotations

import pytest

from agent import planner
from tests.support.builders import plan_settings


@pytest.fixture
def ps() -> planner.PlanSettings:
    return plan_settings()
