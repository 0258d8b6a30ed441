"""The chart ships copies of the canonical rules and dashboard (Helm can only package files
inside the chart). The copies must not drift: run dashboards/sync-chart-files.sh."""

from __future__ import annotations

import pytest

from tests.support.chart import CHART, DASHBOARDS


@pytest.mark.parametrize("name", ["svcprobe-rules.yaml", "svcprobe-dashboard.json"])
def test_chart_files_match_canonical(name: str) -> None:
    canonical = (DASHBOARDS / name).read_bytes()
    copy = (CHART / "files" / name).read_bytes()
    assert copy == canonical, f"chart/files/{name} drifted: run dashboards/sync-chart-files.sh"


def test_chart_files_hold_nothing_else() -> None:
    assert sorted(p.name for p in (CHART / "files").iterdir()) == \
        ["svcprobe-dashboard.json", "svcprobe-rules.yaml"]
