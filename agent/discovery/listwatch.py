"""List + watch of one API collection into a dict of model objects (what informers do).

One `Reflector` per resource: a paginated list (limit/continue, restarted from scratch when a
continue token expires), then a watch from the list's resourceVersion with bookmarks and a
randomized server-side timeout. A clean end of the stream re-watches from the last
resourceVersion seen (events and bookmarks); a 410 Gone (HTTP status or ERROR event) relists and
diffs, so objects deleted while the watch was away disappear. Other failures back off with
jitter (429 honours Retry-After; 401 reloads credentials) and retry, keeping the resourceVersion.

Bodies are raw JSON: list pages are decoded one item at a time (`iter_list_items`), watch
streams line by line (`iter_lines`), and every object goes straight through
`agent.inventory.parse` into the compact model. An object that cannot be parsed is skipped,
counted in ``health.skipped["malformed"]`` and logged with the field at fault; it never stops
the loop. resourceVersions are opaque strings: only ever stored, sent back and compared for
equality.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp

from agent import model
from agent.discovery.client import ApiClient
from agent.health import Health
from agent.inventory import parse

log = logging.getLogger(__name__)

Key = tuple[str, str]
Sleep = Callable[[float], Awaitable[None]]

MAX_EVENT_BYTES = 4 * 2**20  # default cap on one watch event (kubernetes.max_event_bytes)
MAX_LIST_PAGES = 2_000  # default cap on the pages of one list (kubernetes.max_list_pages)
# A list page is read whole: at most this many bytes (kubernetes.max_event_bytes x 8).
PAGE_BYTES_PER_EVENT_BYTES = 8
MAX_ERROR_BODY = 64 * 2**10
MAX_RETRY_AFTER = 300.0
YIELD_EVERY = 64  # list items parsed between two returns to the event loop


@dataclasses.dataclass(frozen=True)
class ResourceKind:
    name: str  # label value in metrics: "services", "endpointslices"
    path: str
    kind: str
    prepare: Callable[[Any], None]  # shrinks the raw object in place before parsing
    parse: Callable[[Mapping[str, Any]], Any]
    weight: Callable[[Any], int]  # endpoint addresses an object contributes


# Memory: the model keeps strings decoded from JSON, and the decoder makes a new string for
# every occurrence. Node names, zones, namespaces, label keys and values, port names and
# protocols repeat across thousands of objects, so they are interned before parsing (at 100,000
# endpoints this saves more than 10 MiB). kubectl's last-applied-configuration annotation (a
# copy of the whole object) is dropped: nothing selects on it.
_intern = sys.intern
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _intern_map(m: Any, values: bool) -> Any:
    if not isinstance(m, dict) or not m:
        return m
    out = {}
    for k, v in m.items():
        if isinstance(k, str):
            k = _intern(k)
        if values and isinstance(v, str) and len(v) <= 63:
            v = _intern(v)
        out[k] = v
    return out


def _prepare_meta(obj: Any) -> None:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return
    ns = meta.get("namespace")
    if isinstance(ns, str):
        meta["namespace"] = _intern(ns)
    meta["labels"] = _intern_map(meta.get("labels"), True)
    ann = meta.get("annotations")
    if isinstance(ann, dict) and ann:
        ann.pop(LAST_APPLIED, None)
        meta["annotations"] = _intern_map(ann, False)


def _prepare_ports(ports: Any) -> None:
    if isinstance(ports, list):
        for p in ports:
            if isinstance(p, dict):
                for f in ("name", "protocol"):
                    v = p.get(f)
                    if isinstance(v, str):
                        p[f] = _intern(v)


def _prepare_service(obj: Any) -> None:
    _prepare_meta(obj)
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if isinstance(spec, dict):
        _prepare_ports(spec.get("ports"))


def _prepare_slice(obj: Any) -> None:
    _prepare_meta(obj)
    if not isinstance(obj, dict):
        return
    _prepare_ports(obj.get("ports"))
    eps = obj.get("endpoints")
    if isinstance(eps, list):
        for ep in eps:
            if isinstance(ep, dict):
                for f in ("hostname",):
                    v = ep.get(f)
                    if isinstance(v, str):
                        ep[f] = _intern(v)


def _no_weight(_: Any) -> int:
    return 0


def _slice_weight(sl: model.EndpointSlice) -> int:
    return sum(len(ep.addresses) for ep in sl.endpoints)


SERVICES = ResourceKind("services", "/api/v1/services", "Service", _prepare_service,
                        parse.parse_service, _no_weight)
ENDPOINT_SLICES = ResourceKind("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices",
                               "EndpointSlice", _prepare_slice, parse.parse_endpoint_slice,
                               _slice_weight)


# ---------------------------------------------------------------------- errors


class Expired(Exception):
    """410 Gone: the resourceVersion (or continue token) is too old; relist."""


class ApiError(Exception):
    """A non-success answer from the API server (HTTP status or a watch ERROR event)."""

    def __init__(self, status: int, reason: str, message: str, *,
                 retry_after: float | None = None, event: bool = False) -> None:
        self.status, self.reason, self.message = status, reason, message
        self.retry_after = retry_after
        self.event = event
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")

    @property
    def restart_reason(self) -> str:
        if self.event:
            return "error_event"
        if self.status == 429:
            return "throttled"
        if self.status == 401:
            return "unauthorized"
        if self.status == 403:
            return "forbidden"
        return "http_error"


class StreamError(Exception):
    """A response body that is not what the API sends (not JSON, wrong shape)."""


async def _next_chunk(content: aiohttp.StreamReader, read_timeout: float) -> bytes:
    """The next piece of a body (b"" at its end), within `read_timeout` (TimeoutError): a
    connection that stays open but sends nothing cannot hang the caller."""
    async with asyncio.timeout(read_timeout):
        return await content.readany()


async def read_capped(content: aiohttp.StreamReader, limit: int, read_timeout: float) -> bytes | None:
    """The whole body, or None when it is longer than `limit` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await _next_chunk(content, read_timeout)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # HTTP-date form: the API server sends seconds
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


async def api_error(resp: aiohttp.ClientResponse) -> ApiError:
    """An ApiError from an error response, with the Status message when there is one."""
    reason, message = resp.reason or "", ""
    try:
        body = await resp.content.read(MAX_ERROR_BODY)
        status = json.loads(body)
        if isinstance(status, dict):
            reason = str(status.get("reason") or reason)
            message = str(status.get("message") or "")
    except (ValueError, aiohttp.ClientError, TimeoutError):
        pass
    return ApiError(resp.status, reason, message[:500],
                    retry_after=_retry_after(resp.headers.get("Retry-After")))


def finish(resp: aiohttp.ClientResponse, *, clean: bool) -> None:
    """Release a response; after a failure (broken, timed out, abandoned) drop its connection
    at once: a graceful TLS shutdown towards a peer that may be gone would hold the socket open
    for another 30 s."""
    if not clean:
        conn = resp.connection
        transport = conn.transport if conn is not None else None
        if transport is not None:
            transport.abort()
        resp.close()
    else:
        resp.release()


# ---------------------------------------------------------------------- wire decoding

_decoder = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def iter_list_items(text: str, top: dict[str, Any]) -> Iterator[Any]:
    """Yield the elements of a List's top-level ``items`` array one at a time.

    Every other top-level member (``metadata``, ``kind``, ...) is stored into `top`, whatever
    its position. Only one item is ever decoded at a time, so a page of big EndpointSlices does
    not turn into one big tree of dicts. Raises StreamError on anything that is not a JSON object.
    """
    scan = _decoder.raw_decode
    def ws(s: str, pos: int) -> re.Match[str]:  # `\s*` matches everywhere
        return _WS.match(s, pos)  # type: ignore[return-value]
    try:
        i = ws(text, 0).end()
        if text[i] != "{":
            raise StreamError("list response is not a JSON object")
        i = ws(text, i + 1).end()
        if text[i] == "}":
            return
        while True:
            i = ws(text, i).end()
            key, i = scan(text, i)
            if not isinstance(key, str):
                raise StreamError("list response: bad member name")
            i = ws(text, i).end()
            if text[i] != ":":
                raise StreamError("list response: expected ':'")
            i = ws(text, i + 1).end()
            if key == "items" and text[i] == "[":
                i = ws(text, i + 1).end()
                if text[i] == "]":
                    i += 1
                else:
                    while True:
                        item, i = scan(text, i)
                        yield item
                        i = ws(text, i).end()
                        c = text[i]
                        i += 1
                        if c == "]":
                            break
                        if c != ",":
                            raise StreamError("list response: expected ',' or ']' in items")
                        i = ws(text, i).end()
            else:
                top[key], i = scan(text, i)
            i = ws(text, i).end()
            c = text[i]
            i += 1
            if c == "}":
                break
            if c != ",":
                raise StreamError("list response: expected ',' or '}'")
        if ws(text, i).end() != len(text):
            raise StreamError("list response: trailing data")
    except IndexError:
        raise StreamError("list response: truncated") from None
    except json.JSONDecodeError as exc:
        raise StreamError(f"list response: {exc}") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise StreamError(f"list response: {exc}") from None
    except RecursionError:
        raise StreamError("list response: JSON nested too deeply") from None


async def iter_lines(content: aiohttp.StreamReader, read_timeout: float,
                     max_bytes: int = MAX_EVENT_BYTES) -> AsyncIterator[list[bytes]]:
    """Newline-delimited records of a streamed body, a batch per chunk received.

    Every wait for data is bounded by `read_timeout` (TimeoutError): a connection that stays
    open but sends nothing cannot hang the caller."""
    pending: list[bytes] = []
    pending_len = 0
    while True:
        chunk = await _next_chunk(content, read_timeout)
        if not chunk:
            break
        if b"\n" not in chunk:
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len > max_bytes:
                raise StreamError(f"watch event longer than {max_bytes} bytes (kubernetes.max_event_bytes)")
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending, pending_len = [], 0
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            pending, pending_len = [tail], len(tail)
        yield [ln for ln in lines if ln.strip()]
    rest = b"".join(pending)
    if rest.strip():
        yield [rest]


# ---------------------------------------------------------------------- backoff


class Backoff:
    """Exponential backoff with jitter: the n-th delay is uniform in [d/2, d],
    d = min(maximum, initial * 2**n)."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.initial, self.maximum = initial, maximum
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        d = min(self.maximum, self.initial * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self.rng.uniform(d / 2, d)

    def reset(self) -> None:
        self.attempt = 0


# ---------------------------------------------------------------------- the reflector


def _key_and_rv(obj: Any) -> tuple[Key, str]:
    """(namespace, name) and resourceVersion of an API object; ValueError when unnamed."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"object must be a mapping, not {type(obj).__name__}")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise ValueError("metadata: must be a mapping")
    name, ns = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name:
        raise ValueError("metadata.name: is required")
    if ns is None or ns == "":
        ns = "default"
    if not isinstance(ns, str):
        raise ValueError("metadata.namespace: must be a string")
    rv = meta.get("resourceVersion")
    return (ns, name), rv if isinstance(rv, str) else ""


class Reflector:
    """Mirrors one collection into `objects` (key -> model object) and keeps it current.

    `on_change()` is called after each batch of applied changes (a list page, a chunk of watch
    events) and when a list completes; `on_synced()` once, after the first complete list.
    """

    def __init__(self, kind: ResourceKind, client: ApiClient, health: Health, *,
                 page_size: int, watch_timeout: float, read_timeout: float,
                 on_change: Callable[[], None], on_synced: Callable[[], None],
                 backoff: Backoff, sleep: Sleep, rng: random.Random,
                 max_event_bytes: int = MAX_EVENT_BYTES, max_pages: int = MAX_LIST_PAGES,
                 parse: Callable[[Mapping[str, Any]], Any] | None = None) -> None:
        self.kind = kind
        self.parse = parse or kind.parse
        self.max_event_bytes = max_event_bytes
        self.max_page_bytes = max_event_bytes * PAGE_BYTES_PER_EVENT_BYTES
        self.max_pages = max_pages
        self.client = client
        self.health = health
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.read_timeout = read_timeout
        self.on_change = on_change
        self.on_synced = on_synced
        self.backoff = backoff
        self.sleep = sleep
        self.rng = rng
        self.objects: dict[Key, Any] = {}
        self.weight = 0  # endpoint addresses over `objects`
        self.rv: str | None = None  # where the next watch starts; None: list first
        self.listing = False  # a list is in progress or failed half-way: state is mixed
        self.synced = False
        self.generation = 0  # bumped on every applied change
        self.last_error = ""
        self._rvs: dict[Key, str] = {}  # resourceVersion of every object seen (incl. skipped)
        self._unknown_types: set[str] = set()
        self._expired_streak = 0
        self._list_counted = False

    # -- state changes

    def _drop(self, key: Key) -> bool:
        self._rvs.pop(key, None)
        old = self.objects.pop(key, None)
        if old is None:
            return False
        self.weight -= self.kind.weight(old)
        self.generation += 1
        return True

    def _malformed(self, what: str, problem: str) -> None:
        self.health.note_skipped("malformed")
        log.warning("%s: skipping %s: %s", self.kind.name, what, problem)

    def _upsert(self, obj: Any, seen: set[Key] | None) -> None:
        try:
            key, rv = _key_and_rv(obj)
        except ValueError as exc:
            self._malformed(f"an unnamed {self.kind.kind}", str(exc))
            return
        if seen is not None:
            seen.add(key)
        if rv and self._rvs.get(key) == rv:
            return  # unchanged (a relist, or a duplicate event)
        try:
            self.kind.prepare(obj)
            new = self.parse(obj)
        except parse.ObjectError as exc:
            self._malformed(f"{exc.kind} {exc.ref}", f"{exc.field}: {exc.problem}")
            new = None
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # unexpected shapes
            self._malformed(f"{self.kind.kind} {key[0]}/{key[1]}", f"unexpected shape: {exc!r}")
            new = None
        if new is None:  # the current version is unusable: do not keep a stale one
            self._drop(key)
            self._rvs[key] = rv
            return
        old = self.objects.get(key)
        if old is not None:
            self.weight -= self.kind.weight(old)
        self.objects[key] = new
        self._rvs[key] = rv
        self.weight += self.kind.weight(new)
        self.generation += 1

    # -- list

    async def list(self) -> None:
        """A full, paginated list; afterwards `objects` is exactly the listed state."""
        self.listing = True
        if not self._list_counted:  # retries after errors are the same relist
            self._list_counted = True
            self.health.note_relist(self.kind.name)
        seen: set[Key] = set()
        token: str | None = None
        pages = 0
        tokens: set[str] = set()
        while True:
            params = {"limit": str(self.page_size)}
            if token:
                params["continue"] = token
            resp = await self.client.get(self.kind.path, params, read_timeout=self.read_timeout)
            clean = False
            try:
                if resp.status == 410 and token:
                    log.info("%s: list continue token expired after %d pages; listing again "
                             "from the start", self.kind.name, pages)
                    self.health.note_relist(self.kind.name)
                    seen.clear()
                    tokens.clear()
                    token, pages = None, 0
                    clean = True
                    continue
                if resp.status != 200:
                    error = await api_error(resp)
                    clean = True
                    raise error
                body = await read_capped(resp.content, self.max_page_bytes, self.read_timeout)
                if body is None:  # too large: the connection is dropped, the rest is not read
                    self._smaller_pages()
                    seen.clear()
                    tokens.clear()
                    token, pages = None, 0
                    continue
                clean = True
            finally:
                finish(resp, clean=clean)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise StreamError("list response is not UTF-8") from None
            del body
            top: dict[str, Any] = {}
            for n, item in enumerate(iter_list_items(text, top), 1):
                self._upsert(item, seen)
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a page can take 100 ms: let probes run
            del text
            pages += 1
            meta = top.get("metadata")
            if not isinstance(meta, Mapping):
                raise StreamError("list response without metadata")
            rv = meta.get("resourceVersion")
            if not isinstance(rv, str) or not rv:
                raise StreamError("list response without metadata.resourceVersion")
            token = meta.get("continue") or None
            if token is not None and not isinstance(token, str):
                raise StreamError("list response: metadata.continue is not a string")
            if token is None:
                break
            # A continue token that comes back, or a list that never ends, is a broken server
            # or proxy: stop and report it (retried with backoff) instead of listing forever.
            if token in tokens:
                raise StreamError(f"list continue token repeated after {pages} pages (the API server or a "
                                  "proxy loops)")
            if pages >= self.max_pages:
                raise StreamError(f"list did not end after {pages} pages (kubernetes.max_list_pages)")
            tokens.add(token)
        gone = [k for k in self._rvs if k not in seen]
        for key in gone:
            self._drop(key)
        if gone:
            log.info("%s: relist removed %d objects deleted while not watching",
                     self.kind.name, len(gone))
        self.rv = rv
        self.listing = False
        self._list_counted = False
        self.last_error = ""
        log.debug("%s: listed %d objects in %d pages at resourceVersion %s",
                  self.kind.name, len(self.objects), pages, rv)
        if not self.synced:
            self.synced = True
            self.on_synced()
        self.on_change()

    def _smaller_pages(self) -> None:
        """A list page was over max_page_bytes: ask for smaller pages from now on (halving
        down to one object a page; the caller starts the list again). One object larger than
        the cap is an invalid response, as a watch event would be."""
        if self.page_size <= 1:
            raise StreamError(f"one {self.kind.kind} is larger than {self.max_page_bytes} bytes "
                              "(kubernetes.max_event_bytes x 8)")
        self.page_size = max(1, self.page_size // 2)
        self.health.note_relist(self.kind.name)
        log.warning("%s: a list page exceeded %d bytes; listing again %d objects a page",
                    self.kind.name, self.max_page_bytes, self.page_size)

    # -- watch

    def _event(self, line: bytes) -> None:
        try:
            ev = json.loads(line)
        except ValueError as exc:  # not JSON, or e.g. an integer too long to convert
            raise StreamError(f"watch event is not usable JSON: {str(exc)[:200]}") from None
        except RecursionError:
            raise StreamError("watch event: JSON nested too deeply") from None
        if not isinstance(ev, dict):
            raise StreamError("watch event is not a JSON object")
        etype, obj = ev.get("type"), ev.get("object")
        if etype == "ERROR":
            status = obj if isinstance(obj, Mapping) else {}
            code = status.get("code")
            if code == 410:
                raise Expired(str(status.get("message") or "Expired"))
            raise ApiError(code if isinstance(code, int) else 0, str(status.get("reason") or ""),
                           str(status.get("message") or "")[:500], event=True)
        if etype == "BOOKMARK":
            meta = obj.get("metadata") if isinstance(obj, Mapping) else None
            rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
            if isinstance(rv, str) and rv:
                self.rv = rv
            return
        if etype not in ("ADDED", "MODIFIED", "DELETED"):
            if str(etype) not in self._unknown_types:
                self._unknown_types.add(str(etype))
                log.warning("%s: skipping watch events of unknown type %r", self.kind.name, etype)
            return
        if etype == "DELETED":
            try:
                key, rv = _key_and_rv(obj)
            except ValueError as exc:
                self._malformed(f"a deleted {self.kind.kind}", str(exc))
                return
            self._drop(key)
        else:
            self._upsert(obj, None)
            meta = obj.get("metadata") if isinstance(obj, Mapping) else None
            rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        if isinstance(rv, str) and rv:
            self.rv = rv

    async def watch(self) -> bool:
        """One watch request from `self.rv` until the stream ends; True if it delivered
        anything. Raises Expired, ApiError, StreamError, TimeoutError, aiohttp.ClientError."""
        assert self.rv is not None
        timeout_s = int(self.rng.uniform(self.watch_timeout, 2 * self.watch_timeout))
        params = {"watch": "true", "resourceVersion": self.rv, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(timeout_s)}
        got = False
        clean = False
        resp = await self.client.get(self.kind.path, params, read_timeout=self.read_timeout)
        try:
            if resp.status == 410:
                clean = True
                raise Expired(f"watch from resourceVersion {self.rv}: HTTP 410")
            if resp.status != 200:
                error = await api_error(resp)
                clean = True
                raise error
            async for lines in iter_lines(resp.content, self.read_timeout, self.max_event_bytes):
                if not got:
                    got = True
                    self.backoff.reset()
                    self._expired_streak = 0
                    self.last_error = ""
                gen = self.generation
                try:
                    for line in lines:
                        self._event(line)
                finally:
                    if self.generation != gen:
                        self.on_change()
                await asyncio.sleep(0)  # a buffered burst must not monopolise the loop
            clean = True  # the server ended the stream
        finally:
            finish(resp, clean=clean)
        return got

    # -- the loop

    def _restart(self, reason: str) -> None:
        self.health.note_watch_restart(self.kind.name, reason)

    async def run(self) -> None:
        """List, then watch, forever (until cancelled)."""
        while True:
            delay = 0.0
            try:
                if self.rv is None:
                    await self.list()
                    if not self._expired_streak:
                        self.backoff.reset()
                started = asyncio.get_running_loop().time()
                got = await self.watch()
                self._restart("closed")
                log.debug("%s: watch ended by the server; watching again from %s",
                          self.kind.name, self.rv)
                if not got and asyncio.get_running_loop().time() - started < 1.0:
                    delay = self.backoff.next()  # a server that closes at once: do not spin
            except Expired as exc:
                self._restart("expired")
                log.info("%s: %s; relisting", self.kind.name, exc)
                self.rv = None
                self._expired_streak += 1
                if self._expired_streak > 1:  # 410 again right after a relist: slow down
                    delay = self.backoff.next()
            except ApiError as exc:
                reason = exc.restart_reason
                self._restart(reason)
                delay = self.backoff.next()
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                self._error(f"{'watch ERROR event' if exc.event else 'HTTP'} {exc}", delay)
                if exc.status == 401:
                    try:
                        await self.client.reauthenticate()
                    except Exception as cexc:
                        log.warning("%s: reloading credentials failed: %s", self.kind.name, cexc)
            except TimeoutError:
                self._restart("timeout")
                delay = self.backoff.next()
                self._error(f"no data from the API server for {self.read_timeout:g}s "
                            "(read timeout)", delay)
            except StreamError as exc:
                self._restart("invalid")
                delay = self.backoff.next()
                self._error(str(exc), delay)
            except (aiohttp.ClientError, OSError) as exc:
                self._restart("connection_error")
                delay = self.backoff.next()
                self._error(f"connection: {type(exc).__name__}: {exc}", delay)
            except Exception as exc:  # a bug, or input nothing above foresaw: report it, keep watching
                self._restart("error")
                delay = self.backoff.next()
                log.exception("%s: unexpected failure; listing again in %.1fs", self.kind.name, delay)
                self.last_error = f"{self.kind.name}: unexpected {type(exc).__name__}: {str(exc)[:200]}"
                self.rv = None  # what was half-applied is not trusted: relist
            if delay > 0:
                await self.sleep(delay)

    def _error(self, message: str, delay: float) -> None:
        where = "list" if self.rv is None else "watch"
        self.last_error = f"{self.kind.name} {where}: {message}"
        log.warning("%s; retrying in %.1fs", self.last_error, delay)
