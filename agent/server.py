"""The HTTP server: metrics, health, the results API and the on-demand debug probe.

`/debug/probe` only ever runs the planned checks of a Service that is in the inventory:
the query string names a Service, never an address or a DNS name, so the endpoint cannot
be used to make the agent contact anything else. It runs one request at a time and at
most once per `debug_interval` seconds.

The server is bounded so that a flood of connections cannot take the agent's file
descriptors (which its DNS and TCP probes need) or memory: at most `MAX_CONNECTIONS` are
open at once. A new connection beyond that closes the oldest idle one (no request in
progress), so idle floods cannot lock out a fresh scrape or kubelet probe; when all of them
are busy, the newcomer gets a 503 and is closed (requests are short, so this clears fast).
A connection that has not completed a request within `KEEPALIVE_SECONDS` (idle, or sending
its headers slowly) is closed. No handler reads a request body; request and header lines
are limited to aiohttp's 8 KiB. A request that does not even parse as HTTP gets its 400 and
is logged at debug level, in one line: aiohttp would log an ERROR with a traceback for
each, which lets any client flood the agent's log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import http_exceptions, web

from agent import model, runbook
from agent.checks import CheckResult, DnsCheck, DnsResult, TcpCheck, TcpResult
from agent.findings import Finding
from agent.health import Health
from agent.metrics import Metrics
from agent.planner import Plan
from agent.results import ResultStore
from agent.scheduler import Prober

MAX_CONNECTIONS = 64  # Prometheus replicas, kubelet probes and a few humans need far fewer
KEEPALIVE_SECONDS = 30.0  # idle (or request-incomplete) connections are closed after this
SEND_SECONDS = 10.0  # a response not taken by the client within this is dropped with its connection
RESULTS_LIMIT = 1000  # results per /api/v1/results page unless `limit` says otherwise
RESULTS_LIMIT_MAX = 5000

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_RESULT_PARAMS = ("failing", "namespace", "service", "check", "result", "path", "limit", "offset")
_RESULTS = frozenset(DnsResult) | frozenset(TcpResult)
_PATHS = ("resolver", "cluster_ip", "endpoint", "nodelocal")


@dataclasses.dataclass
class Context:
    store: ResultStore
    health: Health
    metrics: Metrics
    inventory: Callable[[], model.Inventory]
    plan_for: Callable[[model.Service], Plan]
    prober: Prober
    findings: Callable[[], list[Finding]] = list
    agent: dict[str, Any] = dataclasses.field(default_factory=dict)  # who answers: node, pod, version
    debug_interval: float = 1.0
    _debug_lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    _debug_last: float = -1e9


CONTEXT = web.AppKey("svcprobe", Context)
BUSY = web.AppKey("svcprobe-busy", set)  # connections (request handlers) with a request in progress
_BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
               b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections")


async def _send(request: web.Request, body: bytes, content_type: str, *, status: int = 200,
                headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Write a response within SEND_SECONDS. A client that does not read it (stuck, or on
    purpose) loses its connection instead of holding the body in memory as long as it likes."""
    resp = web.StreamResponse(status=status, headers=headers)
    resp.headers["Content-Type"] = content_type
    resp.content_length = len(body)
    try:
        async with asyncio.timeout(SEND_SECONDS):
            await resp.prepare(request)
            await resp.write(body)
            await resp.write_eof()
    except TimeoutError:
        _HTTP_LOG.debug("%s: response of %d bytes not taken within %gs; connection dropped",
                        request.path, len(body), SEND_SECONDS)
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPRequestTimeout() from None  # ends the handler; the connection is gone
    return resp


async def _send_json(request: web.Request, data: Any, *, status: int = 200,
                     headers: dict[str, str] | None = None) -> web.StreamResponse:
    return await _send(request, json.dumps(data).encode(), "application/json", status=status, headers=headers)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _check_params(request: web.Request, allowed: tuple[str, ...]) -> web.Response | None:
    for name in request.query:
        if name not in allowed:
            return _error(400, f"unknown query parameter {name!r}; allowed: {', '.join(allowed)}")
    for name in allowed:
        if len(request.query.getall(name, [])) > 1:
            return _error(400, f"query parameter {name!r} given more than once")
    return None


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    body, content_type = request.app[CONTEXT].metrics.render(request.headers.get("Accept"))
    return await _send(request, body, content_type)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "agent": request.app[CONTEXT].agent})


async def readyz(request: web.Request) -> web.Response:
    health = request.app[CONTEXT].health
    if health.draining:
        return web.json_response({"status": "draining"}, status=503)
    if not health.inventory_synced:
        return web.json_response({"status": "inventory not synced yet"}, status=503)
    return web.json_response({"status": "ready"})


async def results_handler(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    bad = _check_params(request, _RESULT_PARAMS)
    if bad is not None:
        return bad
    q = request.query
    failing: bool | None = None
    if "failing" in q:
        if q["failing"] not in ("true", "false"):
            return _error(400, f"failing must be true or false, not {q['failing']!r}")
        failing = q["failing"] == "true"
    if "check" in q and q["check"] not in ("dns", "tcp"):
        return _error(400, f"check must be dns or tcp, not {q['check']!r}")
    if "result" in q and q["result"] not in _RESULTS:
        return _error(400, f"result must be one of {', '.join(sorted(_RESULTS))}, not {q['result'][:40]!r}")
    if "path" in q and q["path"] not in _PATHS:
        return _error(400, f"path must be one of {', '.join(_PATHS)}, not {q['path'][:40]!r}")
    for name in ("namespace", "service"):
        if name in q and not _LABEL.match(q[name]):
            return _error(400, f"{name} {q[name]!r} is not a Kubernetes name")
    bounds = {"limit": (RESULTS_LIMIT, 1, RESULTS_LIMIT_MAX), "offset": (0, 0, 10**9)}
    page: dict[str, int] = {}
    for name, (default, lo, hi) in bounds.items():
        text = q.get(name)
        if text is None:
            page[name] = default
        elif not text.isdigit() or not lo <= int(text) <= hi:
            return _error(400, f"{name} must be a whole number from {lo} to {hi}, not {text[:40]!r}")
        else:
            page[name] = int(text)

    results = [
        r for r in ctx.store.snapshot()
        if (failing is None or r.passing != failing)
        and q.get("namespace", r.check.namespace) == r.check.namespace
        and q.get("service", r.check.service) == r.check.service
        and q.get("check", r.check.kind) == r.check.kind
        and q.get("result", r.result) == r.result
        and q.get("path", r.check.path) == r.check.path
    ]
    sweep = ctx.store.last_sweep
    start, end = page["offset"], page["offset"] + page["limit"]
    return await _send_json(request, {
        "agent": ctx.agent,
        "sweep": sweep.to_json() if sweep else None,
        "inventory": {
            "services": ctx.health.inventory_services,
            "endpoints": ctx.health.inventory_endpoints,
            "last_error": ctx.health.last_inventory_error or None,
        },
        "summary": summarize(results),  # over every matching result, not just this page
        "page": {"offset": start, "limit": page["limit"], "total": len(results),
                 "next_offset": end if end < len(results) else None},
        "results": [r.to_json() for r in results[start:end]],
    })


async def findings_handler(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    bad = _check_params(request, ())
    if bad is not None:
        return bad
    sweep = ctx.store.last_sweep
    return await _send_json(request, {
        "agent": ctx.agent,
        "sweep": sweep.to_json() if sweep else None,
        "findings": [f.to_json() for f in ctx.findings()],
    })


def concerning(findings: list[Finding], service: model.Service, inventory: model.Inventory) -> list[Finding]:
    """The findings about a Service: it is among their Services, or their suspect is it or one of
    its endpoints."""
    ref = f"{service.namespace}/{service.name}"
    addresses = {str(a) for sl in inventory.slices_of(service) for ep in sl.endpoints for a in ep.addresses}
    return [f for f in findings if service.key in f.services
            or (f.suspect.type == "service" and f.suspect.name == ref)
            or (f.suspect.address and f.suspect.address in addresses)]


def summarize(results: list[CheckResult]) -> dict[str, Any]:
    by_result: dict[str, int] = {}
    for r in results:
        by_result[f"{r.check.kind}:{r.result}"] = by_result.get(f"{r.check.kind}:{r.result}", 0) + 1
    return {"checks": len(results), "failing": sum(1 for r in results if not r.passing),
            "by_result": dict(sorted(by_result.items()))}


async def debug_probe(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    bad = _check_params(request, ("service",))
    if bad is not None:
        return bad
    ref = request.query.get("service", "")
    namespace, sep, name = ref.partition("/")
    if not sep or not _LABEL.match(namespace) or not _LABEL.match(name):
        return _error(400, "service must be NAMESPACE/NAME of a Service in the inventory, "
                           f"not {ref[:300]!r}")
    service = ctx.inventory().services.get((namespace, name))
    if service is None:
        return _error(404, f"Service {namespace}/{name} is not in the inventory")
    now = time.monotonic()
    wait = ctx._debug_last + ctx.debug_interval - now
    if ctx._debug_lock.locked() or wait > 0:
        retry = max(1, int(wait + 0.999))
        return web.json_response({"error": "a debug probe ran just now or is running; retry later"},
                                 status=429, headers={"Retry-After": str(retry)})
    async with ctx._debug_lock:
        ctx._debug_last = now
        plan = ctx.plan_for(service)
        checks: list[DnsCheck | TcpCheck] = [*plan.dns, *plan.tcp]
        results = await asyncio.gather(*(ctx.prober.run(c, trace=True) for c in checks))
    return await _send_json(request, {
        "service": f"{namespace}/{name}",
        "type": service.type.value,
        "headless": service.headless,
        "cluster_ips": [str(ip) for ip in service.cluster_ips],
        "external_name": service.external_name or None,
        "ready_endpoints": [str(e.address) for e in ctx.inventory().ready_endpoints(service)],
        "summary": summarize(list(results)),
        # What the last sweep found about this Service (the probe just run is not analysed).
        "findings": [f.to_json() for f in concerning(ctx.findings(), service, ctx.inventory())],
        "results": [r.to_json() for r in results],
    })


async def index(request: web.Request) -> web.Response:
    return web.json_response({"endpoints": ["/metrics", "/healthz", "/readyz", "/api/v1/results",
                                            "/api/v1/findings", "/debug/probe?service=NAMESPACE/NAME", "/runbook"]})


async def runbook_handler(request: web.Request) -> web.StreamResponse:
    bad = _check_params(request, ())
    if bad is not None:
        return bad
    return await _send(request, runbook.page(), "text/html; charset=utf-8")


class _BoundedFactory:
    """Protocol factory over `runner.server` that keeps at most `limit` connections open.

    A handler is counted from the moment it is made: `pending` covers the gap until its
    connection_made (asyncio queues that right behind the `call_soon` below, with nothing in
    between), then `server.connections` has it until its connection is gone.
    """

    def __init__(self, runner: web.BaseRunner, limit: int, on_shed: Callable[[str], None]) -> None:
        self.runner, self.limit, self.on_shed = runner, limit, on_shed  # on_shed("evicted" | "busy")
        self.pending = 0

    def _made(self) -> None:
        self.pending -= 1

    def __call__(self) -> asyncio.BaseProtocol:
        server = self.runner.server
        assert server is not None
        live = server.connections  # oldest first
        excess = len(live) + self.pending + 1 - self.limit
        if excess > 0:
            busy = self.runner.app[BUSY] if isinstance(self.runner, web.AppRunner) else set()
            for handler in live:
                if excess <= 0:
                    break
                if handler not in busy:
                    handler.force_close()
                    self.on_shed("evicted")
                    excess -= 1
            if excess > 0:
                self.on_shed("busy")
                return _Busy()
        self.pending += 1
        asyncio.get_running_loop().call_soon(self._made)
        return server()


class _Busy(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_BUSY_REPLY)  # type: ignore[attr-defined]
        transport.close()


@web.middleware
async def _track_busy(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    busy = request.app[BUSY]
    busy.add(request.protocol)
    try:
        return await handler(request)
    finally:
        busy.discard(request.protocol)


class BoundedTCPSite(web.BaseSite):
    """Like aiohttp's TCPSite, with the connection bound of `_BoundedFactory`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 max_connections: int | None = None, on_shed: Callable[[str], None] | None = None) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self.factory = _BoundedFactory(runner, max_connections or MAX_CONNECTIONS, on_shed or _ignore)

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        if self._host in ("::", ""):
            # All addresses: one dual-stack socket, so that "[::]:PORT" also takes IPv4 (asyncio
            # would make it IPv6-only, and a kubelet probing the pod's IPv4 address would fail).
            self._server = await loop.create_server(self.factory, sock=_dual_stack_socket(self._port),
                                                    backlog=128)
            return
        self._server = await loop.create_server(self.factory, self._host, self._port,
                                                reuse_address=True, backlog=128)


def _dual_stack_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    except BaseException:
        sock.close()
        raise
    return sock


class _BadRequestsToDebug(logging.Filter):
    """Malformed HTTP from a client is the client's problem: one debug line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, http_exceptions.HttpProcessingError):
            return True
        if not _HTTP_LOG.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args, record.exc_info, record.exc_text = (
            "bad HTTP request: %s", (str(exc).splitlines()[0][:200],), None, None)
        return True


def _ignore(reason: str) -> None:
    pass


_HTTP_LOG = logging.getLogger("agent.server.http")
_BAD_REQUESTS_TO_DEBUG = _BadRequestsToDebug()


def make_runner(app: web.Application) -> web.AppRunner:
    if _BAD_REQUESTS_TO_DEBUG not in _HTTP_LOG.filters:  # when a server is made, not at import
        _HTTP_LOG.addFilter(_BAD_REQUESTS_TO_DEBUG)
    return web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS,
                         logger=_HTTP_LOG)


def make_app(ctx: Context) -> web.Application:
    app = web.Application(client_max_size=1024, middlewares=[_track_busy])
    app[CONTEXT] = ctx
    app[BUSY] = set()
    app.router.add_get("/", index)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/results", results_handler)
    app.router.add_get("/api/v1/findings", findings_handler)
    app.router.add_get("/debug/probe", debug_probe)
    app.router.add_get("/runbook", runbook_handler)
    return app
