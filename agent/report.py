"""`svcprobe check` output: a table for people, JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from agent.checks import CheckResult, DnsCheck, TcpCheck
from agent.findings import LOOK_AT, Finding
from agent.results import SweepStats


def to_json(results: Sequence[CheckResult], stats: SweepStats, findings: Sequence[Finding] = (),
            notes: Sequence[str] = ()) -> str:
    return json.dumps({"sweep": stats.to_json(), "notes": list(notes), "findings": [f.to_json() for f in findings],
                       "results": [r.to_json() for r in results]}, indent=2)


_NO_ROUTE = frozenset({"timeout", "unreachable", "error"})


def share_note(owned: int, selected: int, canaries: int, replicas: int, agents: int) -> str:
    return (f"this agent's share: {owned} of {selected} selected Services (sharding.replicas {replicas} "
            f"over {agents} agents), plus {canaries} canaries; without --share, check probes them all")


def outside_cluster_note(results: Sequence[CheckResult], *, in_cluster: bool, resolver: Sequence[str],
                         dns_service_ips: Collection[str]) -> str | None:
    """A hint when `check` evidently runs where pods do not: no in-cluster environment and not
    one Service IP reachable (a laptop with a kubeconfig). None when that is not the case."""
    vips = [r for r in results if isinstance(r.check, TcpCheck) and r.check.path == "cluster_ip"
            and r.result != "no_endpoints"]
    if in_cluster or not vips or any(r.result not in _NO_ROUTE for r in vips):
        return None
    text = (f"svcprobe check seems to run outside the cluster: KUBERNETES_SERVICE_HOST is not set and none of "
            f"the {len(vips)} Service IP checks connected")
    if dns_service_ips and not set(resolver) & set(dns_service_ips):
        text += (f", and the resolver ({', '.join(resolver) or 'none'}) is not the cluster DNS Service "
                 f"({', '.join(sorted(dns_service_ips))})")
    return text + (". Pods see another network: check from inside the cluster with `kubectl svcprobe check` "
                   "(a short-lived pod, see the README) or `kubectl exec ds/svcprobe -- svcprobe check`.")


def findings_text(findings: Sequence[Finding]) -> list[str]:
    """Where it broke, most severe first: one line each, then what to look at."""
    if not findings:
        return ["FINDINGS: none"]
    lines = [f"FINDINGS ({len(findings)})"]
    for f in findings:
        lines.append(f"{f.severity.value.upper():8}  {f.kind.value}: {f.suspect}")
        lines.append(f"          {f.summary}")
        lines.append(f"          look at: {LOOK_AT[f.kind]}")
        lines += [f"          also fits: {alt}" for alt in f.alternatives]
        lines += [f"          e.g. {ex}" for ex in f.examples[:2]]
    return lines


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def to_table(results: Sequence[CheckResult], stats: SweepStats, *, show_all: bool = False,
             findings: Sequence[Finding] | None = None, notes: Sequence[str] = ()) -> str:
    """The report: FINDINGS first (when given), then a row per Service, then the failing
    checks (every check with `show_all`), then the totals."""
    services: dict[tuple[str, str], list[CheckResult]] = {}
    for r in results:
        services.setdefault((r.check.namespace, r.check.service), []).append(r)

    summary = [["SERVICE", "DNS OK", "TCP OK", "STATUS"]]
    for (ns, name), rs in sorted(services.items()):
        dns = [r for r in rs if r.check.kind == "dns"]
        tcp = [r for r in rs if r.check.kind == "tcp"]
        failing = sorted({r.result for r in rs if not r.passing})
        no_ep = any(r.result == "no_endpoints" for r in tcp)
        status = "FAIL " + ",".join(failing) if failing else ("ok (no ready endpoints)" if no_ep else "ok")
        summary.append([f"{ns}/{name}", f"{sum(r.passing for r in dns)}/{len(dns)}",
                        f"{sum(r.passing for r in tcp)}/{len(tcp)}" if tcp else "-", status])
    lines = [*findings_text(findings), ""] if findings is not None else []
    lines += _table(summary) if len(summary) > 1 else ["(no Services in the inventory)"]

    shown = [r for r in results if show_all or not r.passing]
    if shown:
        lines += ["", "ALL CHECKS" if show_all else "FAILING CHECKS"]
        detail = [["SERVICE", "CHECK", "PATH", "WHAT", "RESULT", "MS", "Q", "DETAIL"]]
        for r in shown:
            c = r.check
            if isinstance(c, DnsCheck):
                what = f"{c.form} {c.qtype} {c.name}"
                check = "dns"
            else:
                what = f"{c.address}:{c.port}" if c.family == "ipv4" else f"[{c.address}]:{c.port}"
                check = "tcp"
            detail.append([f"{c.namespace}/{c.service}", check, c.path, what, r.result,
                           f"{r.duration_seconds * 1000:.1f}", str(r.queries) if check == "dns" else "-",
                           r.detail])
        lines += _table(detail)

    failing_n = sum(1 for r in results if not r.passing)
    lines += ["", f"{len(results)} checks of {len(services)} Services in {stats.duration:.2f}s: "
                  f"{len(results) - failing_n} passing, {failing_n} failing"]
    lines += [f"note: {n}" for n in notes]
    if stats.loop_lagging:
        lines.append(f"warning: the event loop lagged up to {stats.loop_lag * 1000:.0f} ms during the sweep; "
                     "latencies may be overstated")
    if stats.cpu_starved:
        lines.append(f"warning: the agent waited for a CPU {stats.cpu_wait_ratio:.0%} of the time it needed one "
                     f"({(stats.cpu_wait_seconds or 0.0) * 1000:.0f} ms) during the sweep; latencies may be overstated")
    return "\n".join(lines) + "\n"
