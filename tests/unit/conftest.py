"""Fixtures for the unit tier (builders live in builders.py, imported as a plain module)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from builders import KUBECTL_DUMP, plan_settings

from agent import planner


@pytest.fixture
def ps() -> planner.PlanSettings:
    return plan_settings()


@pytest.fixture
def kubectl_dump() -> str:
    return KUBECTL_DUMP
