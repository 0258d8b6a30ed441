"""Plugs svcprobe's own DNS engine (agent/probes/dns.py) into the benchmark.

It drives the engine through the API a sweep uses (the scheduler, through
``Prober.submit``): ``DnsEngine.submit(candidates, qtype, servers, on_done)``, where each
finished lookup's callback starts the next one, so ``job.concurrency`` lookups are in flight:

    engine = DnsEngine(timeout=..., attempts=..., budget=TokenBucket(...))
    engine.submit([fqdn], "A", [(address, port)], on_done)  # on_done(lookup) from the loop
    lookup.status == "answer" and lookup.records == ("198.18.0.10",)
    await engine.close()

Like the agent, the engine gets a query budget (a token bucket), sized far above what the
benchmark can send, so every query pays for ``reserve()`` but never waits. It gets as many
sockets per server as the raw loops (``--raw-sockets``, 4; the agent's ``dns.sockets``
default is 8, which costs it a few per cent here) and recycles them every 2,000 queries as
the agent does. The per-lookup
work the scheduler adds on top (judging the answer, storing the result) is not the DNS
engine's and is not measured here.

When the engine cannot be imported or does not have that API, :func:`availability` says why
and the benchmark shows the svcprobe column as *pending* instead of failing.
"""

from __future__ import annotations

import asyncio
import time

from bench.dns_engines import Counts, Job

# Far above any rate this benchmark reaches: reserve() is paid, a wait never happens.
BUDGET_RATE = 10_000_000.0
BUDGET_BURST = 1_000_000


def availability() -> str | None:
    """None when the engine can be benchmarked, else why not (shown as 'pending: ...')."""
    try:
        from agent.probes import dns as engine_mod
    except Exception as exc:
        return f"agent.probes.dns not importable ({type(exc).__name__}: {exc})"
    engine_cls = getattr(engine_mod, "DnsEngine", None)
    if engine_cls is None or not callable(getattr(engine_cls, "submit", None)):
        return "agent.probes.dns has no DnsEngine with submit()"
    return None


async def run_svcprobe(job: Job, sockets: int = 4) -> Counts:
    from agent.probes.budget import TokenBucket
    from agent.probes.dns import DnsEngine, Lookup

    loop = asyncio.get_running_loop()
    engine = DnsEngine(timeout=job.timeout, attempts=1, sockets=sockets,
                       budget=TokenBucket(BUDGET_RATE, BUDGET_BURST))
    servers = [job.server]
    names, n = job.names, len(job.names)
    expected = dict(zip(job.names, job.expected, strict=True))
    counts = Counts()
    errors: list[str] = []
    state = {"next": 0, "in_flight": 0}
    finished: asyncio.Future[None] = loop.create_future()

    def start_next() -> None:
        i = state["next"]
        if i >= job.total or time.monotonic() >= job.deadline:
            if state["in_flight"] == 0 and not finished.done():
                finished.set_result(None)
            return
        state["next"] = i + 1
        state["in_flight"] += 1
        engine.submit([names[i % n]], "A", servers, on_done)

    def on_done(lookup: Lookup) -> None:
        state["in_flight"] -= 1
        if lookup.status == "answer":
            if len(lookup.records) == 1 and lookup.records[0] == expected[lookup.qname]:
                counts.ok += 1
            else:
                counts.wrong += 1
        elif lookup.status in ("timeout", "error"):
            counts.failed += 1
            if len(errors) < 3:
                errors.append(f"{lookup.status}: {lookup.detail}")
        else:
            counts.wrong += 1
        start_next()

    try:
        for _ in range(job.concurrency):
            start_next()
        # Each lookup ends within its own timeout; the outer bound is a safety net against an
        # engine that never calls back.
        remaining = job.deadline - time.monotonic() + 10 * job.timeout + 5
        try:
            await asyncio.wait_for(asyncio.shield(finished), timeout=max(remaining, 1))
        except TimeoutError:
            errors.append(f"{state['in_flight']} lookups never finished")
    finally:
        await engine.close()
    counts.detail = "; ".join(errors)
    return counts
