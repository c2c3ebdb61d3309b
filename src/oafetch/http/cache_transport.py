"""The cache stage itself: hishel's RFC 9111 state machine driven over oafetch's stack.

:class:`CacheTransport` drives hishel's sans-I/O state machine (``IdleClient`` →
``FromCache`` / ``NeedRevalidation`` / ``CacheMiss`` → ``StoreAndUse`` …) over a shared
:class:`hishel.SqliteStorage`, instead of using ``hishel.httpx.CacheTransport``, because that
adapter keys and stores the raw URL and headers (credentials in plain text), stores anything
RFC 9111 allows (a 503 with ``max-age``, a challenge page), has no stale-while-revalidate and
reports its flags only above the CLIENT span. What oafetch decides around the state machine
(admission, assumed freshness, keys, scrubbing) is in :mod:`oafetch.http.cache_policy`.

Per request (``request.extensions["oafetch"]``):

* roles ``metadata`` and ``landing`` (robots.txt: ``landing`` + ``robots``) are cached; role
  ``artifact``, non-GET methods, range and caller-made conditional requests pass straight through;
  ``{"no_cache": True}`` opts a request out;
* the stage writes ``cache`` (``bypass``, ``miss``, ``revalidating``, ``stored``, ``hit``,
  ``stale``, ``revalidated``) and, after a 304, ``cache_revalidated = True``; responses carry
  ``extensions["caching"] = {"from_cache", "revalidated", "stored", "stale"}``;
* a hit (fresh or stale) is recorded with :func:`~oafetch.telemetry.emit.emit_http_event`
  (``from_cache=True``); a revalidation goes through the network, so its CLIENT span exists and
  the instrumentation hook marks it ``revalidated`` (a 304 to a conditional request).

Thread-safety: one instance serves every worker thread of a run; the storage serialises its
SQLite connection, and several processes share one database file (WAL, busy timeout).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

import httpx
from hishel import (
    AnyState,
    CacheMiss,
    CacheOptions,
    CouldNotBeStored,
    Entry,
    FromCache,
    Headers,
    IdleClient,
    InvalidateEntries,
    NeedRevalidation,
    NeedToBeUpdated,
    Request,
    Response,
    SqliteStorage,
    StoreAndUse,
)

from oafetch.http.cache_bodies import buffered, caching, chained, passthrough, read_bounded
from oafetch.http.cache_policy import (
    CONDITIONAL_HEADERS,
    ROLE_HEADER,
    STORED_AT_HEADER,
    FreshnessRules,
    HeaderLists,
    assume_freshness,
    body_refusal,
    cache_key,
    cache_url,
    clean_request_headers,
    clean_response_headers,
    ensure_date,
    refusal,
    scrub_body,
    serve_stale,
    vary_matches,
    worth_storing,
)
from oafetch.http.transports import META, meta_of
from oafetch.telemetry.emit import emit_http_event
from oafetch.telemetry.runtime import Telemetry
from oafetch.urls import url_hash

log = logging.getLogger(__name__)

#: oafetch's cache belongs to one user: a private cache (``private`` answers are stored,
#: ``s-maxage`` is ignored). Only GET is cached.
OPTIONS = CacheOptions(shared=False, supported_methods=["GET"], allow_stale=False)
CACHED_ROLES = frozenset({"metadata", "landing", "robots"})
#: A background revalidation never waits longer than this for a rate slot (it is optional).
BACKGROUND_MAX_RATE_WAIT_S = 5.0
_CLOSE_WAIT_S = 2.0
_MIB = 1024 * 1024


def _lists(headers: Headers) -> HeaderLists:
    return {name: list(headers.get_list(name) or []) for name in headers}


def _pairs(headers: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in headers.items() for value in values]


class CacheTransport(httpx.BaseTransport):
    """The cache stage: serve fresh answers from the storage, revalidate stale ones, store new.

    Args:
        inner: the breaker stage (everything below it costs a token and a breaker call).
        storage: the shared hishel storage (closed with this transport).
        rules: assumed freshness for answers without cache headers.
        telemetry: where cache hits are recorded (``oafetch.http`` events).
        secrets: credential values to scrub from what is stored (besides names and e-mails).
        max_entry_bytes: larger bodies pass through uncached.
        max_age_s: an entry is dropped this long after it was stored.
        background: serve an entry within its stale-while-revalidate window at once and
            revalidate it on a background thread (``False``: revalidate in the foreground).

    ``handle_request`` blocks like any transport; a hit reads the stored body at once.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        storage: SqliteStorage,
        *,
        rules: FreshnessRules | None = None,
        telemetry: Telemetry | None = None,
        secrets: tuple[str, ...] = (),
        max_entry_bytes: int = 16 * _MIB,
        max_age_s: float = 30 * 86400.0,
        background: bool = True,
        body_deadline_s: float = 120.0,
    ) -> None:
        self._inner = inner
        self._storage = storage
        self._rules = rules or FreshnessRules()
        self._telemetry = telemetry or Telemetry.noop()
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))
        self._max_bytes = max_entry_bytes
        self._max_age_s = max_age_s
        self._background = background
        self._body_deadline_s = body_deadline_s
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: set[str] = set()
        self._futures: set[Future[None]] = set()

    # -- the seam ------------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        meta = meta_of(request)
        role = self._role(request, meta)
        if role is None:
            meta["cache"] = "bypass"
            return self._inner.handle_request(request)
        started = time.perf_counter()
        internal = Request(
            method="GET",
            url=cache_url(str(request.url), self._secrets),
            headers=Headers(clean_request_headers(request.headers.multi_items(), self._secrets)),
        )
        key = cache_key("GET", internal.url)
        state: AnyState = IdleClient(options=OPTIONS).next(internal, self._entries(key))
        if (
            isinstance(state, NeedRevalidation)
            and self._background
            and not meta.get("cache_background")
            and (entry := self._stale_entry(state, internal)) is not None
        ):
            response = self._serve(request, meta, entry, started, stale=True)
            if response is not None:
                self._revalidate_later(request, key)
                return response
        return self._drive(request, meta, role, internal, key, state, started)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, pending = self._executor, list(self._futures)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            wait_futures(pending, timeout=_CLOSE_WAIT_S)
        try:
            self._inner.close()
        finally:
            self._storage.close()

    # -- the state machine ---------------------------------------------------------------------
    def _drive(
        self,
        request: httpx.Request,
        meta: dict[str, Any],
        role: str,
        internal: Request,
        key: str,
        state: AnyState,
        started: float,
    ) -> httpx.Response:
        upstream: httpx.Response | None = None
        revalidating = False
        while True:
            if isinstance(state, FromCache):
                response = self._serve(
                    request, meta, state.entry, started, revalidated=revalidating
                )
                if response is not None:
                    return response
                # The stored body vanished (purged by another process): ask the server.
                state, revalidating = CacheMiss(request=internal, options=OPTIONS), False
            elif isinstance(state, CacheMiss | NeedRevalidation):
                revalidating = isinstance(state, NeedRevalidation)
                meta["cache"] = "revalidating" if revalidating else "miss"
                upstream = self._send(request, state.request)
                if revalidating and upstream.status_code == 304:
                    try:
                        upstream.read()
                    finally:
                        upstream.close()
                    state = state.next(self._internal_304(upstream))
                    continue
                reason = refusal(
                    upstream.status_code,
                    clean_response_headers(upstream.headers.multi_items()),
                    self._max_bytes,
                )
                if reason is not None:
                    # Never stored, and a stale entry survives a 5xx/429 for the next attempt.
                    return passthrough(upstream, meta, reason)
                judged = self._internal_response(upstream, request.url.host, role)
                if not worth_storing(_lists(judged.headers)):
                    return passthrough(upstream, meta, "stale at once, no validator")
                state = state.next(judged)
            elif isinstance(state, NeedToBeUpdated):
                for entry in state.updating_entries:
                    self._storage.update_headers(entry.id, entry.response.headers)
                meta["cache_revalidated"] = True
                state = state.next()
            elif isinstance(state, InvalidateEntries):
                for entry_id in state.entry_ids:
                    self._storage.remove_entry(entry_id)
                state = state.next()
            elif isinstance(state, StoreAndUse):
                assert upstream is not None
                return self._store(upstream, meta, role, internal, key, state.response)
            elif isinstance(state, CouldNotBeStored):
                assert upstream is not None
                return passthrough(upstream, meta, "not storable (RFC 9111)")
            else:  # pragma: no cover - IdleClient is handled by the caller
                raise AssertionError(f"unexpected cache state {type(state).__name__}")

    # -- steps ---------------------------------------------------------------------------------
    @staticmethod
    def _role(request: httpx.Request, meta: Mapping[str, Any]) -> str | None:
        """The cache role of a request, or ``None`` when it passes straight through."""
        role = meta.get("role")
        if role is None or request.method != "GET" or meta.get("no_cache"):
            return None
        name = "robots" if str(role) == "landing" and meta.get("robots") else str(role)
        if name not in CACHED_ROLES:
            return None  # artifacts are never cached
        if "range" in request.headers or any(h in request.headers for h in CONDITIONAL_HEADERS):
            return None  # the caller manages its own validators (download.py re-fetches)
        if "no-store" in request.headers.get("cache-control", "").lower():
            return None
        return name

    def _entries(self, key: str) -> list[Entry]:
        try:
            return self._storage.get_entries(key)
        except RuntimeError:  # closed, or a database hishel refuses: no cache for this one
            log.debug("cache lookup failed", exc_info=True)
            return []

    def _send(self, request: httpx.Request, wanted: Request) -> httpx.Response:
        """Send the caller's own request, adding only the validators hishel asked for.

        The request that reaches the server is the original (credentials included); the
        sanitised copy hishel reasons about never goes on the wire.
        """
        extra = {k: v for k in CONDITIONAL_HEADERS if (v := wanted.headers.get(k)) is not None}
        if not extra:
            return self._inner.handle_request(request)
        original = request.headers
        headers = original.copy()
        for name, value in extra.items():
            headers[name] = value
        request.headers = headers
        try:
            return self._inner.handle_request(request)
        finally:
            request.headers = original

    def _internal_response(self, upstream: httpx.Response, host: str, role: str) -> Response:
        """The answer as hishel judges and stores it: clean headers, a Date, assumed freshness."""
        now = time.time()
        headers = ensure_date(
            clean_response_headers(upstream.headers.multi_items(), self._secrets), now
        )
        status = upstream.status_code
        headers = assume_freshness(
            headers,
            ttl_s=self._rules.ttl(host, role, status),
            swr_s=self._rules.swr(host, role),
        )
        return Response(status_code=status, headers=Headers(headers))

    def _internal_304(self, upstream: httpx.Response) -> Response:
        headers = clean_response_headers(upstream.headers.multi_items(), self._secrets)
        return Response(status_code=304, headers=Headers(ensure_date(headers, time.time())))

    def _stale_entry(self, state: NeedRevalidation, internal: Request) -> Entry | None:
        """The most recent entry if it may be served stale while revalidating (RFC 5861)."""
        if not state.revalidating_entries:
            return None
        entry = state.revalidating_entries[0]
        stored = _lists(entry.response.headers)
        if not vary_matches(stored, _lists(entry.request.headers), _lists(internal.headers)):
            return None
        if not serve_stale(
            stored, time.time(), request_cache_control=internal.headers.get("cache-control")
        ):
            return None
        return entry

    def _serve(
        self,
        request: httpx.Request,
        meta: dict[str, Any],
        entry: Entry,
        started: float,
        *,
        stale: bool = False,
        revalidated: bool = False,
    ) -> httpx.Response | None:
        """A response from a stored entry (``None`` if its body can no longer be read)."""
        stream = entry.response.stream
        try:
            body = b"".join(stream) if isinstance(stream, Iterator) else b""
        except Exception:  # deleted while read (a purge elsewhere), database error
            log.debug("cached body unreadable; fetching again", exc_info=True)
            return None
        status = entry.response.status_code
        response = httpx.Response(
            status,
            headers=_pairs(_lists(entry.response.headers)),
            stream=httpx.ByteStream(body),
            extensions={"caching": caching(from_cache=True, revalidated=revalidated, stale=stale)},
        )
        if revalidated:
            meta["cache"] = "revalidated"
            meta["cache_revalidated"] = True
            return response  # went to the server: its CLIENT span is the record
        meta["cache"] = "stale" if stale else "hit"
        meta["from_cache"] = True
        meta.pop("client_span_id", None)  # an earlier hop's span must not claim this body
        if not meta.get("cache_background"):
            emit_http_event(
                host=str(meta.get("host") or request.url.host),
                role=str(meta.get("role")),
                method=request.method,
                status=status,
                url_hash=str(meta.get("url_hash") or url_hash(str(request.url))),
                elapsed_ms=(time.perf_counter() - started) * 1000.0,
                from_cache=True,
                stale=stale,
                retry_count=int(meta.get("retry_count") or 0),
                bytes_=len(body),
                telemetry=self._telemetry,
            )
        return response

    def _store(
        self,
        upstream: httpx.Response,
        meta: dict[str, Any],
        role: str,
        internal: Request,
        key: str,
        judged: Response,
    ) -> httpx.Response:
        """Read the body (bounded), refuse PDFs and challenge pages, store, serve the bytes."""
        body, rest = read_bounded(upstream, self._max_bytes, self._body_deadline_s)
        if rest is not None:
            return chained(upstream, body, rest, meta)
        refused = body_refusal(body)
        if refused is not None:
            meta["cache"] = "miss"
            log.debug("not cached (%s): %s", refused, internal.url)
            return buffered(upstream, body, caching())
        headers = {
            k: v
            for k, v in _lists(judged.headers).items()
            if k not in ("content-encoding", "content-length")
        }
        headers["content-length"] = [str(len(body))]  # stored decoded (as hishel does)
        stored_request = Request(
            method="GET",
            url=internal.url,
            headers=Headers(
                {
                    **_lists(internal.headers),
                    ROLE_HEADER: [role],
                    STORED_AT_HEADER: [f"{time.time():.3f}"],
                }
            ),
        )
        stored = False
        try:
            entry = self._storage.create_entry(
                stored_request,
                Response(
                    status_code=judged.status_code,
                    headers=Headers(headers),
                    stream=iter([scrub_body(body, self._secrets)]),
                ),
                key,
                ttl=self._max_age_s,
            )
            stream = entry.response.stream
            if isinstance(stream, Iterator):
                for _ in stream:  # the storage saves the body as it is read
                    pass
            stored = True
        except Exception:  # a cache failure never fails the request
            log.warning("oafetch: could not store a response in the HTTP cache", exc_info=True)
        meta["cache"] = "stored" if stored else "miss"
        return buffered(upstream, body, caching(stored=stored))

    # -- stale-while-revalidate ----------------------------------------------------------------
    def _revalidate_later(self, request: httpx.Request, key: str) -> None:
        """Revalidate a stale entry off the caller's thread (once per key at a time)."""
        with self._lock:
            if self._closed or key in self._inflight:
                return
            self._inflight.add(key)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="oafetch-cache"
                )
            executor = self._executor
        meta = meta_of(request)
        kept = ("role", "robots", "host", "url_hash", "url_redacted", "origin_host")
        facts: dict[str, Any] = {k: meta[k] for k in kept if k in meta}
        facts["cache_background"] = True
        facts["retry_count"] = 0
        facts["max_rate_wait_s"] = BACKGROUND_MAX_RATE_WAIT_S
        clone = httpx.Request(
            request.method,
            request.url,
            headers=request.headers.copy(),
            extensions={**request.extensions, META: facts},
        )
        context = contextvars.copy_context()  # keeps the run/work identity and the parent span
        try:
            future = executor.submit(context.run, self._revalidate, clone, key)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._inflight.discard(key)
            return
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _revalidate(self, request: httpx.Request, key: str) -> None:
        try:
            response = self.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except Exception:  # best effort: the next request revalidates in the foreground
            log.debug("background revalidation failed", exc_info=True)
        finally:
            with self._lock:
                self._inflight.discard(key)
