"""`svcprobe diagnose`: every agent's findings, gathered and merged into cluster verdicts.

Two sources: Prometheus (the `svcprobe_finding` series every agent exports, with the `node`
label the chart's monitor adds: works from a laptop through a port-forward), or the agents
themselves (`/api/v1/findings` of each, found through the agents' headless Service or given
as URLs). What could not be heard is said, never silently left out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.parse
from collections.abc import Sequence
from typing import Any

import aiohttp

from agent import model
from agent.findings.cluster import Reported, Verdict, merge
from agent.findings.kinds import Kind, Severity

MAX_BODY = 8 * 1024 * 1024  # one agent's findings or one Prometheus answer
CONCURRENCY = 32  # agents asked at once


class DiagnoseError(Exception):
    """No source could be used at all (the message says why)."""


@dataclasses.dataclass
class Gathered:
    source: str  # what was asked, for the report
    reported: list[Reported] = dataclasses.field(default_factory=list)
    nodes: list[str] = dataclasses.field(default_factory=list)  # agents heard from
    silent: list[str] = dataclasses.field(default_factory=list)  # "who: why" for each agent not heard
    ignored: list[str] = dataclasses.field(default_factory=list)  # findings that could not be read

    def verdicts(self) -> list[Verdict]:
        return merge(self.reported, self.nodes)


def _reported(node: str, kind: Any, severity: Any, suspect: Any, summary: Any, g: Gathered) -> None:
    try:
        g.reported.append(Reported(node, Kind(kind), Severity(severity), str(suspect), str(summary or "")))
    except ValueError:
        g.ignored.append(f"{node}: unknown kind {str(kind)[:40]!r} or severity {str(severity)[:20]!r} "
                         "(an agent of another version?)")


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        body = await resp.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ValueError(f"answer larger than {MAX_BODY // (1024 * 1024)} MiB")
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}: {body[:200].decode(errors='replace')}")
        return json.loads(body)


# -------------------------------------------------------------------------- Prometheus


def _node_of(labels: dict[str, str]) -> str:
    return labels.get("node") or labels.get("instance") or "(no node label)"


async def _instant(http: aiohttp.ClientSession, base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        doc = await _get_json(http, url)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise DiagnoseError(f"Prometheus at {base}: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise DiagnoseError(f"Prometheus at {base}: query {expr!r} failed: {str(doc)[:300]}")
    data = doc.get("data") or {}
    if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise DiagnoseError(f"Prometheus at {base}: query {expr!r} did not return an instant vector")
    return [s for s in data["result"] if isinstance(s, dict) and isinstance(s.get("metric"), dict)]


async def from_prometheus(base: str, *, timeout: float, stale_after: float) -> Gathered:
    """Current findings of every agent Prometheus scrapes. An agent whose last sweep is older
    than `stale_after` seconds, or that was scraped within that time but is not now, is silent:
    its findings are not current."""
    g = Gathered(source=f"Prometheus {base}")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        agents = await _instant(http, base, "max by (node, instance) (svcprobe_build_info)")
        # Agents scraped within the window but not now: down, or no longer scraped.
        recent = await _instant(http, base, f"max by (node, instance) (max_over_time(svcprobe_build_info"
                                            f"[{max(1, int(stale_after))}s]))")
        ages = await _instant(http, base, "time() - max by (node, instance) (svcprobe_last_sweep_timestamp_seconds)")
        findings = await _instant(http, base, "svcprobe_finding == 1")
    if not agents:
        raise DiagnoseError(f"Prometheus at {base} has no svcprobe_build_info series: it scrapes no svcprobe agent "
                            "(or not under that name)")
    stale: set[str] = set()
    for s in ages:
        try:
            age = float(s["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if age > stale_after:
            stale.add(_node_of(s["metric"]))
            g.silent.append(f"{_node_of(s['metric'])}: last sweep {age:.0f}s ago")
    now = {_node_of(s["metric"]) for s in agents}
    for node in sorted({_node_of(s["metric"]) for s in recent} - now):
        g.silent.append(f"{node}: scraped within the last {stale_after:.0f}s, not now (agent down or not scraped)")
    swept = {_node_of(s["metric"]) for s in ages}
    for s in agents:
        node = _node_of(s["metric"])
        if node not in swept:
            g.silent.append(f"{node}: no sweep completed yet")
            stale.add(node)
    g.nodes = sorted({_node_of(s["metric"]) for s in agents} - stale)
    for s in findings:
        labels = s["metric"]
        node = _node_of(labels)
        if node in stale:
            continue
        _reported(node, labels.get("kind"), labels.get("severity"), labels.get("suspect", ""), "", g)
    return g


# -------------------------------------------------------------------------- the agents


def agent_urls(inventory: model.Inventory, peers: tuple[str, str], default_port: int) -> list[str]:
    """The agents' HTTP base URLs from their headless Service's EndpointSlices (every address
    listed, ready or not: a not-ready agent may still have findings, or say why it has none)."""
    svc = inventory.services.get(peers)
    if svc is None:
        raise DiagnoseError(f"the agents' Service {peers[0]}/{peers[1]} is not in the inventory "
                            "(--agents-service, or sharding.peers_service)")
    urls: set[str] = set()
    for sl in inventory.slices_of(svc):
        port = next((p.port for p in sl.ports if p.protocol == "TCP" and p.port), None) or default_port
        for ep in sl.endpoints:
            for addr in ep.addresses[:1]:
                host = f"[{addr}]" if addr.version == 6 else str(addr)
                urls.add(f"http://{host}:{port}")
    if not urls:
        raise DiagnoseError(f"the agents' Service {peers[0]}/{peers[1]} lists no endpoint: no agent is running")
    return sorted(urls)


async def from_agents(urls: Sequence[str], *, timeout: float) -> Gathered:
    g = Gathered(source=f"{len(urls)} agent(s)")
    slots = asyncio.Semaphore(CONCURRENCY)

    async def ask(http: aiohttp.ClientSession, base: str) -> None:
        async with slots:
            try:
                doc = await _get_json(http, f"{base.rstrip('/')}/api/v1/findings")
                node = str(((doc.get("agent") or {}).get("node")) or urllib.parse.urlsplit(base).netloc)
                findings = doc["findings"]
                if not isinstance(findings, list):
                    raise ValueError("findings is not a list")
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, AttributeError, TypeError) as exc:
                g.silent.append(f"{base}: {exc.__class__.__name__}: {str(exc)[:200]}")
                return
            if doc.get("sweep") is None:
                g.silent.append(f"{node} ({base}): no sweep completed yet")
                return
            g.nodes.append(node)
            for f in findings:
                if not isinstance(f, dict) or not isinstance(f.get("suspect"), dict):
                    g.ignored.append(f"{node}: a finding that is not an object")
                    continue
                _reported(node, f.get("kind"), f.get("severity"), f["suspect"].get("text", ""), f.get("summary"), g)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        await asyncio.gather(*(ask(http, u) for u in urls))
    g.nodes = sorted(set(g.nodes))  # two agents on one node (a rollout) count as one node
    g.silent.sort()
    return g


# -------------------------------------------------------------------------- the report


def to_json(g: Gathered) -> str:
    return json.dumps({"source": g.source, "nodes": g.nodes, "silent": g.silent, "ignored": g.ignored,
                       "verdicts": [v.to_json() for v in g.verdicts()]}, indent=2)


def to_text(g: Gathered) -> str:
    verdicts = g.verdicts()
    lines = [f"CLUSTER VERDICTS from {g.source}: {len(g.nodes)} node(s) heard"]
    if not verdicts:
        lines.append("none: no agent has a finding")
    for v in verdicts:
        lines.append(f"{v.severity.value.upper():8}  {v.text()}")
        lines.append(f"          look at: {v.look_at()}")
        lines += [f"          {s}" for s in v.summaries[:2]]
    if g.silent:
        lines += ["", f"NOT HEARD FROM ({len(g.silent)}): their nodes are not in the verdicts"]
        lines += [f"  {s}" for s in g.silent[:20]]
        if len(g.silent) > 20:
            lines.append(f"  ... {len(g.silent) - 20} more")
    if g.ignored:
        lines += ["", f"IGNORED ({len(g.ignored)})"] + [f"  {s}" for s in g.ignored[:10]]
    return "\n".join(lines) + "\n"
