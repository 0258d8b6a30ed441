"""A fake Kubernetes API server for list/watch edge cases (loopback only).

It speaks the real wire format for the two collections the agent mirrors, cluster-wide:

- ``GET /api/v1/services`` and ``GET /apis/discovery.k8s.io/v1/endpointslices``
- list: ``{"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": RV,
  "continue": TOKEN, "remainingItemCount": N}, "items": [...]}`` (items without kind/apiVersion,
  as the real server sends them); ``limit``/``continue`` pagination over a consistent snapshot;
  an expired continue token is an HTTP 410 ``Status`` with reason ``Expired``.
- watch (``?watch=true&resourceVersion=RV``): newline-delimited JSON events ``{"type": ...,
  "object": ...}`` (ADDED, MODIFIED, DELETED, BOOKMARK with only ``metadata.resourceVersion``
  when ``allowWatchBookmarks=true``, ERROR with a ``Status`` object); a resourceVersion older
  than the retained history answers with an ERROR 410 event or, in ``expired_as="http"`` mode,
  an HTTP 410; ``timeoutSeconds`` ends the stream cleanly.
- errors are ``Status`` objects; 401 without the right bearer token when ``token`` is set.

Resource versions are one global counter rendered as ``f"{rv_prefix}{n}"``: give a non-numeric
prefix to check that a client treats them as opaque strings.

The control API is plain Python (the server runs on the caller's event loop): ``put``/``delete``
objects (``notify=False`` changes state without an event, as if the client missed it),
``bookmark``, ``expire`` (compact history, 410 for watchers), ``close_watches`` (clean end or
abort), ``hang_watches`` / the ``hang_new`` attribute (half-open: the stream stops sending without
closing), ``fail`` (inject HTTP errors such as 500, 429 with Retry-After, 410), ``send_raw``
(arbitrary lines: unknown event types, garbage), ``expire_continue_tokens``. Every request is
recorded in ``requests`` (without credentials).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from aiohttp import web

Key = tuple[str, str]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Log = Callable[[int], None]  # records the request with the HTTP status it was answered


@dataclasses.dataclass(frozen=True)
class Resource:
    name: str  # "services", "endpointslices"
    path: str
    kind: str
    api_version: str

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


RESOURCES: dict[str, Resource] = {
    "services": Resource("services", "/api/v1/services", "Service", "v1"),
    "endpointslices": Resource(
        "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice",
        "discovery.k8s.io/v1",
    ),
}


@dataclasses.dataclass(frozen=True)
class FakeRequest:
    resource: str
    verb: str  # "list" or "watch"
    params: dict[str, str]
    authorized: bool
    status: int  # HTTP status answered (200 for a watch that started streaming)


@dataclasses.dataclass
class _Fault:
    verb: str  # "list", "watch" or "any"
    resource: str | None
    status: int
    retry_after: str | None
    reason: str
    times: int
    continue_only: bool


@dataclasses.dataclass
class _Stored:
    rv: int
    item: bytes  # JSON of the object as a list item (no kind/apiVersion)


_CLOSE, _ABORT, _HANG = object(), object(), object()


class _Watcher:
    def __init__(self, resource: str, bookmarks: bool) -> None:
        self.resource = resource
        self.bookmarks = bookmarks
        self.queue: asyncio.Queue[Any] = asyncio.Queue()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeKubeAPI:
    """See the module docstring. ``async with FakeKubeAPI() as api: api.url ...``"""

    def __init__(self, *, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 rv_prefix: str = "", expired_as: str = "event", start_rv: int = 100) -> None:
        if expired_as not in ("event", "http"):
            raise ValueError("expired_as must be 'event' or 'http'")
        self.token = token
        self.ssl_context = ssl_context
        self.rv_prefix = rv_prefix
        self.expired_as = expired_as
        self.requests: list[FakeRequest] = []
        # half-open for new watches: "headers" (the stream opens and sends its backlog, then
        # nothing) or "silent" (not even the response headers arrive)
        self.hang_new: Literal[False, "headers", "silent"] = False
        self._rv = start_rv
        self._objects: dict[str, dict[Key, _Stored]] = {r: {} for r in RESOURCES}
        self._history: dict[str, list[tuple[int, bytes]]] = {r: [] for r in RESOURCES}
        # a watch must start at or after oldest - 1 (older: 410 Gone)
        self._oldest: dict[str, int] = {r: start_rv + 1 for r in RESOURCES}
        self._watchers: set[_Watcher] = set()
        self._snapshots: dict[int, tuple[str, int, list[bytes]]] = {}
        self._next_snapshot = 1
        self._faults: list[_Fault] = []
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> FakeKubeAPI:
        app = web.Application()
        for res in RESOURCES.values():
            app.router.add_get(res.path, self._handler(res))
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._stopping.set()
        for w in list(self._watchers):
            w.queue.put_nowait(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubeAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ state control

    def rv(self, n: int | None = None) -> str:
        """The current resource version (or version number `n`) as the wire shows it."""
        return f"{self.rv_prefix}{self._rv if n is None else n}"

    def _parse_rv(self, text: str) -> int:
        if not text.startswith(self.rv_prefix):
            raise ValueError(text)
        return int(text[len(self.rv_prefix):])

    def objects(self, resource: str) -> dict[Key, dict[str, Any]]:
        return {k: json.loads(s.item) for k, s in self._objects[resource].items()}

    def put(self, resource: str, obj: dict[str, Any], *, key: Key | None = None,
            notify: bool = True) -> str:
        """Create or replace an object; returns its new resourceVersion.

        `key` is only needed for objects whose metadata is too broken to name them.
        With `notify=False` the change gets a resourceVersion but no watch event (a change the
        client missed; follow with `expire` so that it has to relist)."""
        res = RESOURCES[resource]
        if key is None:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
        self._rv += 1
        item = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        if isinstance(item.get("metadata"), dict):
            item["metadata"] = {**item["metadata"], "resourceVersion": self.rv()}
        body = json.dumps(item, separators=(",", ":")).encode()
        etype = "MODIFIED" if key in self._objects[resource] else "ADDED"
        self._objects[resource][key] = _Stored(self._rv, body)
        if notify:
            self._emit(res, self._event(res, etype, body))
        return self.rv()

    def put_many(self, resource: str, objs: Iterable[dict[str, Any]]) -> None:
        """Bulk create without events (set-up before any client connects)."""
        for obj in objs:
            self.put(resource, obj, notify=False)
        self._oldest[resource] = self._rv + 1

    def delete(self, resource: str, namespace: str, name: str, *, notify: bool = True) -> str:
        res = RESOURCES[resource]
        stored = self._objects[resource].pop((namespace, name))
        self._rv += 1
        item = json.loads(stored.item)
        if isinstance(item.get("metadata"), dict):
            item["metadata"]["resourceVersion"] = self.rv()
        body = json.dumps(item, separators=(",", ":")).encode()
        if notify:
            self._emit(res, self._event(res, "DELETED", body))
        return self.rv()

    def bookmark(self, resource: str | None = None) -> str:
        """Send a BOOKMARK at the current resourceVersion to watchers that asked for them."""
        for res in self._resources(resource):
            line = self._line({"type": "BOOKMARK", "object": {
                "kind": res.kind, "apiVersion": res.api_version,
                "metadata": {"resourceVersion": self.rv(), "creationTimestamp": None}}})
            for w in self._watching(res.name):
                if w.bookmarks:
                    w.queue.put_nowait(line)
        return self.rv()

    def send_raw(self, resource: str, line: bytes) -> None:
        """Write one arbitrary line (newline added) to every watcher of `resource`."""
        for w in self._watching(resource):
            w.queue.put_nowait(line.rstrip(b"\n") + b"\n")

    def expire(self, resource: str | None = None) -> None:
        """Compact: history up to now is gone. Open watches get an ERROR 410 event and end
        (or, with expired_as="http", just end; their re-watch then gets an HTTP 410)."""
        for res in self._resources(resource):
            self._history[res.name].clear()
            self._oldest[res.name] = self._rv + 1
            for w in self._watching(res.name):
                if self.expired_as == "event":
                    w.queue.put_nowait(self._expired_event())
                w.queue.put_nowait(_CLOSE)
        for sid, (rname, _, _) in list(self._snapshots.items()):
            if resource is None or rname == resource:
                del self._snapshots[sid]

    def expire_continue_tokens(self) -> None:
        self._snapshots.clear()

    def close_watches(self, resource: str | None = None, *, abort: bool = False) -> int:
        """End open watch streams: cleanly (as the server's timeout does) or by aborting the
        connection mid-stream. Returns how many were closed."""
        ws = [w for r in self._resources(resource) for w in self._watching(r.name)]
        for w in ws:
            w.queue.put_nowait(_ABORT if abort else _CLOSE)
        return len(ws)

    def hang_watches(self, resource: str | None = None) -> int:
        """Half-open: open watch streams stop sending anything, without closing."""
        ws = [w for r in self._resources(resource) for w in self._watching(r.name)]
        for w in ws:
            w.queue.put_nowait(_HANG)
        return len(ws)

    def watchers(self, resource: str | None = None) -> int:
        return sum(1 for r in self._resources(resource) for _ in self._watching(r.name))

    def fail(self, verb: str = "any", resource: str | None = None, *, status: int = 500,
             retry_after: str | None = None, reason: str = "", times: int = 1,
             continue_only: bool = False) -> None:
        """The next `times` matching requests get an HTTP error `status` (a Status body)."""
        if verb not in ("list", "watch", "any"):
            raise ValueError(verb)
        self._faults.append(_Fault(verb, resource, status, retry_after,
                                   reason or _REASONS.get(status, "InternalError"), times,
                                   continue_only))

    def clear_faults(self) -> None:
        self._faults.clear()

    def requests_for(self, resource: str, verb: str | None = None) -> list[FakeRequest]:
        return [r for r in self.requests
                if r.resource == resource and (verb is None or r.verb == verb)]

    # ------------------------------------------------------------------ internals

    def _resources(self, resource: str | None) -> list[Resource]:
        return list(RESOURCES.values()) if resource is None else [RESOURCES[resource]]

    def _watching(self, resource: str) -> list[_Watcher]:
        return [w for w in self._watchers if w.resource == resource]

    @staticmethod
    def _line(doc: dict[str, Any]) -> bytes:
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def _event(res: Resource, etype: str, item: bytes) -> bytes:
        head = (f'{{"type":"{etype}","object":{{"kind":"{res.kind}",'
                f'"apiVersion":"{res.api_version}"').encode()
        rest = item[1:]
        if rest != b"}":
            head += b","
        return head + rest + b"}\n"

    def _expired_event(self) -> bytes:
        return self._line({"type": "ERROR", "object": _status(
            410, "Expired", f"too old resource version: 1 ({self._oldest.get('services')})")})

    def _emit(self, res: Resource, line: bytes) -> None:
        self._history[res.name].append((self._rv, line))
        for w in self._watching(res.name):
            w.queue.put_nowait(line)

    def _take_fault(self, res: Resource, verb: str, has_continue: bool) -> _Fault | None:
        for f in self._faults:
            if f.verb not in (verb, "any") or f.resource not in (None, res.name):
                continue
            if f.continue_only and not has_continue:
                continue
            f.times -= 1
            if f.times <= 0:
                self._faults.remove(f)
            return f
        return None

    def _error(self, code: int, reason: str, message: str,
               headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(_status(code, reason, message), status=code, headers=headers)

    def _handler(self, res: Resource) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            params = dict(request.query)
            verb = "watch" if params.get("watch") in ("true", "1") else "list"
            scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
            # as the API server does: the scheme is case-insensitive
            authorized = self.token is None or (
                scheme.lower() == "bearer" and credential.strip() == self.token)

            def log(status: int) -> None:
                self.requests.append(FakeRequest(res.name, verb, params, authorized, status))

            if not authorized:
                log(401)
                return self._error(401, "Unauthorized", "Unauthorized")
            fault = self._take_fault(res, verb, bool(params.get("continue")))
            if fault is not None:
                log(fault.status)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                return self._error(fault.status, fault.reason,
                                   f"injected {fault.status} {fault.reason}", headers)
            if verb == "list":
                return self._list(res, params, log)
            return await self._watch(request, res, params, log)

        return handle

    def _list(self, res: Resource, params: dict[str, str], log: Log) -> web.Response:
        try:
            limit = int(params.get("limit") or 0)
        except ValueError:
            log(400)
            return self._error(400, "BadRequest", "limit must be an integer")
        token = params.get("continue")
        if token:
            try:
                sid, offset = (int(x) for x in base64.urlsafe_b64decode(token).decode().split(":"))
            except ValueError:
                log(400)
                return self._error(400, "BadRequest", "invalid continue token")
            if sid not in self._snapshots or self._snapshots[sid][0] != res.name:
                log(410)
                return self._error(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.")
            _, rv, items = self._snapshots[sid]
        else:
            sid, offset = self._next_snapshot, 0
            self._next_snapshot += 1
            rv = self._rv
            items = [s.item for _, s in sorted(self._objects[res.name].items())]
            if limit:
                self._snapshots[sid] = (res.name, rv, items)
        end = len(items) if not limit else min(len(items), offset + limit)
        meta: dict[str, Any] = {"resourceVersion": self.rv(rv)}
        if end < len(items):
            meta["continue"] = base64.urlsafe_b64encode(f"{sid}:{end}".encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        else:
            self._snapshots.pop(sid, None)
        head = json.dumps({"kind": res.list_kind, "apiVersion": res.api_version,
                           "metadata": meta}, separators=(",", ":")).encode()
        body = head[:-1] + b',"items":[' + b",".join(items[offset:end]) + b"]}"
        log(200)
        return web.Response(body=body, content_type="application/json")

    async def _watch(self, request: web.Request, res: Resource, params: dict[str, str],
                     log: Log) -> web.StreamResponse:
        rv_text = params.get("resourceVersion", "")
        backlog: list[bytes] = []
        expired = False
        if rv_text in ("", "0"):
            backlog = [self._event(res, "ADDED", s.item)
                       for _, s in sorted(self._objects[res.name].items())]
        else:
            try:
                since = self._parse_rv(rv_text)
            except ValueError:
                log(400)
                return self._error(400, "BadRequest", f"invalid resourceVersion {rv_text!r}")
            if since < self._oldest[res.name] - 1:
                if self.expired_as == "http":
                    log(410)
                    return self._error(410, "Expired",
                                       f"too old resource version: {rv_text} ({self.rv()})")
                expired = True
            else:
                backlog = [line for n, line in self._history[res.name] if n > since]
        hang = self.hang_new
        if hang == "silent":  # accepted, but not even the headers arrive
            log(200)
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable()
        watcher = _Watcher(res.name, params.get("allowWatchBookmarks") in ("true", "1"))
        for line in backlog:
            watcher.queue.put_nowait(line)
        if expired:
            watcher.queue.put_nowait(self._expired_event())
            watcher.queue.put_nowait(_CLOSE)
        if hang:
            watcher.queue.put_nowait(_HANG)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        log(200)
        self._watchers.add(watcher)
        try:
            timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        except ValueError:
            timeout = None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    first = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                batch = [first]
                while not watcher.queue.empty() and len(batch) < 4096:
                    batch.append(watcher.queue.get_nowait())
                data = []
                end = None
                for item in batch:
                    if isinstance(item, bytes):
                        data.append(item)
                    else:
                        end = item
                        break
                if data:
                    await resp.write(b"".join(data))
                if end is _CLOSE:
                    break
                if end is _ABORT:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if end is _HANG:
                    await self._stopping.wait()
                    return resp
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._watchers.discard(watcher)
        return resp


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            410: "Expired", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


# ---------------------------------------------------------------------- object builders

def service(namespace: str, name: str, *, cluster_ip: str | None = "198.18.0.10",
            ports: Iterable[tuple[str, int]] = (("http", 80),), headless: bool = False,
            labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
            extra_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A v1 Service as the API serves it (ClusterIP, or headless)."""
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "ports": [{"name": n, "protocol": "TCP", "port": p, "targetPort": p} for n, p in ports],
        "sessionAffinity": "None",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
    }
    if headless:
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
    elif cluster_ip is not None:
        spec["clusterIP"], spec["clusterIPs"] = cluster_ip, [cluster_ip]
    spec.update(extra_spec or {})
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "uid": f"uid-svc-{namespace}-{name}",
                            "creationTimestamp": "2026-01-01T00:00:00Z"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": spec,
            "status": {"loadBalancer": {}}}


def endpoint_slice(namespace: str, name: str, service_name: str, addresses: Iterable[str], *,
                   port: int | None = 8080, port_name: str = "http", ready: bool = True,
                   address_type: str = "IPv4") -> dict[str, Any]:
    """A discovery.k8s.io/v1 EndpointSlice as the EndpointSlice controller writes it."""
    eps = []
    for i, addr in enumerate(addresses):
        eps.append({
            "addresses": [addr],
            "conditions": {"ready": ready, "serving": ready, "terminating": False},
            "nodeName": f"node-{i % 50}",
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"{service_name}-{i}",
                          "uid": f"uid-pod-{namespace}-{service_name}-{i}"},
        })
    return {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": name, "namespace": namespace, "uid": f"uid-eps-{namespace}-{name}",
            "labels": {"kubernetes.io/service-name": service_name,
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "generateName": f"{service_name}-",
        },
        "addressType": address_type,
        "endpoints": eps,
        "ports": [{"name": port_name, "protocol": "TCP", "port": port}],
    }


class RecordingSleep:
    """A `sleep` for KubeSource's backoff: records each delay, then yields only briefly, so
    a test sees many retries quickly."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.01)
