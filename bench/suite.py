"""The whole benchmark suite, one command (``bench/run``): every section in one run, one table of
ratios and goals on stdout, everything as JSON in one file.

    bench/run [--quick] [--out PATH] [--sections LIST] [DNS options...]

Sections, each a child process (pinned: the measured side on CPU 1, servers on CPU 0, when the
machine has two CPUs and taskset), in this order:

  dns           bench/dns_bench.py: svcprobe's DNS engine vs raw asyncio loops and dnspython
  dns_external  bench/dns_external.py: svcprobe vs blackbox_exporter's DNS prober and dnsperf
  tcp           bench/tcp_throughput.py: svcprobe's TCP probe vs raw sock_connect and blackbox
  accuracy      bench/accuracy.py: reported latency vs a delaying relay's ground truth
  sweep_cost    bench/sweep_cost.py: CPU and memory of one 10k-Service sweep, /metrics
  cluster_model bench/cluster_model.py: N agents' DNS and API load vs meshes (pure computation)
  discovery     bench/discovery_sync.py: Kubernetes list+watch at 10k Services / 100k endpoints

Options this command does not know are passed to the ``dns`` section
(``python -m bench.dns_bench --help``). Each section writes its own JSON, gathered under
``sections`` in ``--out``; the ``summary`` holds the ratio table and the issue's goals with
"met"/"not met" (goals are reported, never enforced). Exit status: 0 when every section ran,
1 when one failed to run (crashed, timed out, or reported that a benchmark did not run
properly), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, environment, log, sweep_flags, two_cpus, write_json

SECTIONS = ("dns", "dns_external", "tcp", "accuracy", "sweep_cost", "cluster_model", "discovery")
MODULES = {"dns": "bench.dns_bench", "dns_external": "bench.dns_external", "tcp": "bench.tcp_throughput",
           "accuracy": "bench.accuracy", "sweep_cost": "bench.sweep_cost", "cluster_model": "bench.cluster_model",
           "discovery": "bench.discovery_sync"}
# Upper bounds on a section's wall time (it is killed past them and counted as failed).
LIMITS = {"quick": 300, "full": 1800}
GOALS = {
    "dns svcprobe/raw": 0.8, "dns svcprobe/dnspython": 3.0, "dns svcprobe/blackbox": 4.0,
    "tcp svcprobe/raw": 0.8, "tcp svcprobe/blackbox": 3.0,
}


def section_command(name: str, args: argparse.Namespace, out: str, extra: list[str]) -> list[str]:
    pin = args.pin
    py = sys.executable
    client = ["taskset", "-c", "1"] if pin else []
    cmd: list[str]
    if name == "dns":
        cmd = [*client, py, "-m", MODULES[name], "--server-cpu", "0" if pin else "-1", "--out", out, *extra]
        if args.quick:
            cmd.append("--quick")
        return cmd
    if name == "discovery":
        cmd = [py, "-m", MODULES[name], "--out", out]
        if args.quick:
            cmd += ["--services", "1000", "--endpoints", "10000", "--events", "2000", "--clients", "svcprobe"]
        if not pin:
            cmd.append("--no-pin")
        return cmd
    # accuracy and sweep_cost pin their own children; the others are measured in-process.
    prefix = client if name in ("dns_external", "tcp", "cluster_model") else []
    cmd = [*prefix, py, "-m", MODULES[name], "--out", out]
    if args.quick:
        cmd.append("--quick")
    if not pin and name != "cluster_model":
        cmd.append("--no-pin")
    return cmd


def run_section(name: str, args: argparse.Namespace, tmp: str, extra: list[str]) -> dict[str, Any]:
    out = os.path.join(tmp, f"{name}.json")
    cmd = section_command(name, args, out, extra)
    limit = LIMITS["quick" if args.quick else "full"]
    log(f"\n=== {name}: {' '.join(shlex.quote(c) for c in cmd)}")
    t0 = time.perf_counter()
    try:
        # The section's tables and progress go to stderr; stdout is the suite's own table.
        proc = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=limit)
        code = proc.returncode
        why = "" if code == 0 else f"exited {code}"
    except subprocess.TimeoutExpired:
        code, why = -1, f"did not finish within {limit}s (killed)"
    seconds = round(time.perf_counter() - t0, 1)
    result: dict[str, Any] | None = None
    try:
        result = json.loads(Path(out).read_text())
    except (OSError, ValueError) as exc:
        why = why or f"no JSON result ({exc})"
    return {"ok": not why, "exit_code": code, "why": why, "seconds": seconds, "command": cmd, "result": result}


# --------------------------------------------------------------------------------------------
# the summary


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def summarise(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []

    def add(section: str, name: str, value: Any, unit: str = "", per_cpu: Any = None, goal_key: str = "",
            note: str = "") -> None:
        goal = GOALS.get(goal_key) if goal_key else None
        met = None if goal is None or value is None else value >= goal
        rows.append({"section": section, "name": name, "value": value, "unit": unit, "per_cpu_second": per_cpu,
                     "goal": goal, "met": met, "note": note})

    dns = _get(sections, "dns", "result", "summary")
    if dns:
        for key in ("svcprobe/raw", "svcprobe/raw_drain", "svcprobe/raw_await", "svcprobe/dnspython"):
            if key in dns["ratios"]:
                add("dns", key, dns["ratios"][key], "x", dns["ratios_per_client_cpu_second"].get(key),
                    goal_key=f"dns {key}")
        eng = dns["engines"].get("svcprobe", {})
        if eng.get("lookups_per_second_median"):
            add("dns", "svcprobe lookups/s", eng["lookups_per_second_median"], "/s",
                eng.get("lookups_per_client_cpu_second_median"))
    ext = _get(sections, "dns_external", "result", "summary")
    if ext:
        for key in ("svcprobe/blackbox", "svcprobe/dnsperf", "svcprobe/raw", "raw/blackbox"):
            add("dns_external", key, ext["ratios"].get(key), "x", ext["ratios_per_client_cpu_second"].get(key),
                goal_key=f"dns {key}" if key == "svcprobe/blackbox" else "",
                note="same knotd as blackbox/dnsperf" if key == "svcprobe/raw" else "")
        for eng_name in ("blackbox", "dnsperf"):
            e = ext["engines"].get(eng_name, {})
            if e.get("lookups_per_second_median"):
                add("dns_external", f"{eng_name} lookups/s", e["lookups_per_second_median"], "/s",
                    e.get("lookups_per_client_cpu_second_median"),
                    note=f"knotd CPU {e.get('server_cpu_utilisation_median') or 0:.0%}")
    tcp = _get(sections, "tcp", "result", "summary")
    if tcp:
        for key in ("svcprobe/raw", "svcprobe/blackbox"):
            add("tcp", key, tcp["ratios"].get(key), "x", tcp["ratios_per_client_cpu_second"].get(key),
                goal_key=f"tcp {key}")
        e = tcp["engines"].get("svcprobe", {})
        if e.get("connects_per_second_median"):
            add("tcp", "svcprobe connects/s", e["connects_per_second_median"], "/s",
                e.get("connects_per_client_cpu_second_median"))
    acc = _get(sections, "accuracy", "result")
    goals: dict[str, Any] = {}
    if acc:
        for r in acc["rows"]:
            if r["kind"] == "dns" and r["condition"] in ("normal", "max", "max+cpu", "normal+stalls", "dnsperf@20/s"):
                add("accuracy", f"dns +{r['delay_ms']:g}ms {r['condition']} p50 err", r.get("p50_error_ms"), "ms",
                    note=f"p99 err {r.get('p99_error_ms')} ms"
                    + (f"; loop lag {r['sweep']['event_loop_lag_seconds'] * 1000:.0f} ms, "
                       + (f"flagged ({why})" if (why := sweep_flags(r["sweep"])) else "not flagged")
                       if "sweep" in r else ""))
                if r["condition"] == "normal":
                    rows[-1]["goal"] = f"|err| <= {r.get('p50_allowed_ms')}"
                    rows[-1]["met"] = r.get("p50_within_goal")
            if r["kind"] == "tcp" and r["condition"] in ("normal", "max"):
                add("accuracy", f"tcp {r['condition']} p50 err", r.get("p50_error_ms"), "ms",
                    note=f"truth p50 {r['truth']['p50_ms']} ms (kernel handshake RTT; no delay can be added)")
        goals["accuracy p50 at normal rate"] = acc.get("goal_p50_within_at_normal_rate")
    sw = _get(sections, "sweep_cost", "result")
    if sw and sw.get("child"):
        ph = sw["child"]["phases"]
        n = sw["parameters"]["services"]
        add("sweep_cost", f"one sweep of {n} Services: CPU-s", ph["sweep"]["cpu_seconds"], "s",
            note=f"{ph['sweep']['checks']} checks in {ph['sweep']['wall_seconds']} s; "
                 f"plan {ph['plan']['cpu_seconds']} CPU-s")
        add("sweep_cost", "peak RSS", sw["child"]["peak_rss_mib"], "MiB",
            note=f"after inventory {ph['inventory']['rss_mib_after']} MiB, "
                 f"after plan {ph['plan']['rss_mib_after']} MiB")
        add("sweep_cost", "/metrics render (median)", round(ph["render"]["render_seconds_median"] * 1000, 1), "ms",
            note=f"{ph['render']['series']} series, {ph['render']['bytes']} bytes")
        add("sweep_cost", "/metrics scrape over HTTP (median)", round(ph["scrape"]["scrape_seconds_median"] * 1000, 1),
            "ms")
    cm = _get(sections, "cluster_model", "result")
    if cm:
        for r in cm["results"]:
            s, e = r["svcprobe"], r["every_node"]
            add("cluster_model", f"{r['nodes']} nodes: cluster DNS q/s svcprobe/every-node",
                round(s["cluster_dns_qps_wanted"] / e["cluster_dns_qps_wanted"], 4), "x",
                note=f"{s['cluster_dns_qps_wanted']:.0f} vs {e['cluster_dns_qps_wanted']:.0f} q/s wanted; per agent "
                     f"p50 {s['dns_qps_wanted_per_agent']['p50']} q/s wanted, budget-capped "
                     f"{s['dns_qps_sent_per_agent']['p50']}; {s['api_watch_connections']} API watches")
            g = r["agent_gauge_check"]["relative_error"]
            add("cluster_model", f"{r['nodes']} nodes: agent gauge vs simulation", g["median"], "rel. err",
                note=f"range {g['min']:+.1%}..{g['max']:+.1%}")
    disc = _get(sections, "discovery", "result")
    sv = _get(disc, "results", "svcprobe")
    if isinstance(sv, dict):
        n = _get(disc, "params", "services")
        add("discovery", f"initial sync of {n} Services: CPU-s", round(sv["sync_cpu_s"], 2), "s",
            note=f"wall {sv['sync_wall_s']:.1f} s; goal <= 10 CPU-s (issue 3)")
        add("discovery", "peak RSS after sync", round(sv["peak_rss_mib"], 1), "MiB", note="goal <= 150 MiB (issue 3)")
        add("discovery", "watch events/s", round(sv["watch_events_per_s"]), "/s")
        for key, v in (_get(disc, "ratios") or {}).items():
            add("discovery", key, round(v, 2), "x")
    for k, v in GOALS.items():
        sec, ratio_name = k.split(" ", 1)
        vals = [r for r in rows if r["name"] == ratio_name and r["goal"] == v and r["section"].startswith(sec)]
        goals[f"{k} >= {v:g}"] = vals[0]["met"] if vals else None
    return {"rows": rows, "goals": goals}


def print_summary(result: dict[str, Any]) -> None:
    print("\nsvcprobe benchmarks" + (" (quick)" if result["quick"] else "")
          + f" - {result['environment']['date']}, commit {result['environment']['commit']}")
    print(f"{'section':<14} {'figure':<48} {'value':>10} {'per CPU-s':>10} {'goal':>14} {'met':>6}  note")
    for r in result["summary"]["rows"]:
        v = r["value"]
        val = "n/a" if v is None else (f"{v:.3g}" if isinstance(v, float) and abs(v) < 1000 else f"{v:,.0f}"
                                       if isinstance(v, (int, float)) else str(v))
        pc = r["per_cpu_second"]
        pcs = "" if pc is None else (f"{pc:.3g}" if abs(pc) < 1000 else f"{pc:,.0f}")
        goal = "" if r["goal"] is None else (f">= {r['goal']:g}" if isinstance(r["goal"], (int, float)) else r["goal"])
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['section']:<14} {r['name'][:48]:<48} {val:>10} {pcs:>10} {goal:>14} {met:>6}  {r['note']}")
    print()
    for name, s in result["sections"].items():
        state = "ran" if s["ok"] else f"FAILED ({s['why']})"
        print(f"  {name:<14} {state} in {s['seconds']:.0f}s")
    print()


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0],
                                epilog="Other options go to the dns section: python -m bench.dns_bench --help")
    p.add_argument("--quick", action="store_true", help="the short CI-sized variant of every section")
    p.add_argument("--out", default=str(REPO / "bench" / "results.json"), help="JSON results (%(default)s)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of %(default)s")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    args, extra = p.parse_known_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    if args.pin and not two_cpus():
        log("bench/run: fewer than 2 CPUs (or no taskset): not pinning; figures are less comparable")
        args.pin = False
    return args, extra


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args, extra = parse_args(raw)
    started = time.time()
    sections: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="svcprobe-bench-") as tmp:
        for name in args.sections:
            sections[name] = run_section(name, args, tmp, extra if name == "dns" else [])
    result = {
        "benchmark": "svcprobe-bench-suite",
        "command": "bench/run" + "".join(f" {shlex.quote(a)}" for a in raw),
        "quick": args.quick,
        "pinned": args.pin,
        "environment": environment(),
        "seconds": round(time.time() - started, 1),
        "sections": sections,
    }
    result["summary"] = summarise(sections)
    result["problems"] = [f"{n}: {s['why']}" for n, s in sections.items() if not s["ok"]]
    write_json(args.out, result)
    print_summary(result)
    log(f"results written to {args.out}")
    if result["problems"]:
        log("sections that failed to run:\n  " + "\n  ".join(result["problems"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
