"""Smoke test of the benchmark suite: `bench/run --quick` runs every section and writes
well-formed JSON. No timing assertions: figures are reported, never tested (bench/README.md).

Starts knotd, dnsperf, blackbox_exporter, loopback listeners and relays through bench/run
(which installs what is missing); all traffic stays on loopback. About a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("dns", "dns_external", "tcp", "accuracy", "sweep_cost", "cluster_model", "discovery")

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_bench_run_quick_writes_every_section(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("bench/run needs the project venv (make venv)")
    out = tmp_path / "results.json"
    proc = subprocess.run([str(ROOT / "bench" / "run"), "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=540, env={**os.environ})
    sys.stderr.write(proc.stderr[-4000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())

    assert doc["quick"] is True
    assert doc["command"].startswith("bench/run --quick")
    assert set(doc["sections"]) == set(SECTIONS)
    for name in SECTIONS:
        section = doc["sections"][name]
        assert section["ok"], (name, section["why"])
        assert isinstance(section["result"], dict), name
    assert doc["problems"] == []

    s = doc["sections"]
    assert set(s["dns"]["result"]["summary"]["engines"]) >= {"raw", "dnspython", "svcprobe"}
    ext = s["dns_external"]["result"]["summary"]["engines"]
    assert {"raw", "svcprobe", "blackbox", "dnsperf"} <= set(ext)
    assert all("lookups_per_second_median" in ext[e] for e in ext)
    assert {"raw", "svcprobe", "blackbox"} <= set(s["tcp"]["result"]["summary"]["engines"])
    rows = s["accuracy"]["result"]["rows"]
    assert {(r["kind"], r["delay_ms"]) for r in rows} == {("dns", 5.0), ("dns", 20.0), ("tcp", 0.0)}
    assert all(r["truth"]["n"] > 0 for r in rows)
    assert {r["condition"] for r in rows if "sweep" in r} >= {"normal", "max", "normal+stalls"}
    phases = s["sweep_cost"]["result"]["child"]["phases"]
    assert {"inventory", "plan", "sweep", "render", "scrape"} <= set(phases)
    assert [r["nodes"] for r in s["cluster_model"]["result"]["results"]] == [100, 1000, 5000]

    summary = doc["summary"]
    assert summary["rows"] and all({"section", "name", "value", "goal", "met"} <= set(r) for r in summary["rows"])
    assert {"dns svcprobe/raw >= 0.8", "dns svcprobe/dnspython >= 3", "dns svcprobe/blackbox >= 4",
            "tcp svcprobe/raw >= 0.8", "tcp svcprobe/blackbox >= 3",
            "accuracy p50 at normal rate"} <= set(summary["goals"])
    assert "svcprobe benchmarks (quick)" in proc.stdout
