"""Plugs svcprobe's own DNS engine (agent/probes/dns.py) into the benchmark.

The only thing that depends on the engine's API is :func:`run_svcprobe`. It is written against
``agent.probes.dns.DnsEngine`` as drafted:

    engine = DnsEngine(timeout=..., attempts=...)
    lookup = await engine.lookup([fqdn], "A", [(address, port)])   # -> Lookup
    lookup.status == "answer" and lookup.records == ("198.18.0.10",)
    await engine.close()

When the engine cannot be imported or does not have that API, :func:`availability` says why
and the benchmark shows the svcprobe column as *pending* instead of failing.
"""

from __future__ import annotations

import inspect

from bench.dns_engines import Counts, Job, drive


def availability() -> str | None:
    """None when the engine can be benchmarked, else why not (shown as 'pending: ...')."""
    try:
        from agent.probes import dns as engine_mod
    except Exception as exc:  # noqa: BLE001 - any import problem means "not there yet"
        return f"agent.probes.dns not importable ({type(exc).__name__}: {exc})"
    engine_cls = getattr(engine_mod, "DnsEngine", None)
    if engine_cls is None or not inspect.iscoroutinefunction(getattr(engine_cls, "lookup", None)):
        return "agent.probes.dns has no DnsEngine with an async lookup()"
    return None


async def run_svcprobe(job: Job) -> Counts:
    from agent.probes.dns import DnsEngine

    engine = DnsEngine(timeout=job.timeout, attempts=1)
    servers = [job.server]

    async def lookup(name: str, want: str) -> bool | None:
        result = await engine.lookup([name], "A", servers)
        if result.status == "answer":
            return tuple(result.records) == (want,)
        if result.status in ("timeout", "error"):
            return None
        return False

    try:
        return await drive(job, lookup)
    finally:
        await engine.close()
