"""Bodies through the cache stage: read within bounds, handed on buffered or chained.

The cache stage must see a whole body before it can store it, but a body that outgrows the
cache's entry limit is not refused: what was read is chained to the rest of the upstream
stream and passed on uncached. Every response the stage returns carries
``extensions["caching"]`` (hishel's ``CacheStatus`` keys plus ``stale``), read by the
telemetry hook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx

from oafetch.errors import FetchError
from oafetch.http.decoding import decoded_chunks
from oafetch.tokens import Reason
from oafetch.urls import redact_url

log = logging.getLogger("oafetch.http.cache_transport")

_DECODE_STEP = 256 * 1024  # the most one decoding step may expand a compressed body
_HOP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def caching(
    *,
    from_cache: bool = False,
    revalidated: bool = False,
    stored: bool = False,
    stale: bool = False,
) -> dict[str, bool]:
    """The ``caching`` extension of a response."""
    return {"from_cache": from_cache, "revalidated": revalidated, "stored": stored, "stale": stale}


class _Chained(httpx.SyncByteStream):
    """The bytes already read, then the rest of the upstream body; closing closes upstream."""

    def __init__(self, head: bytes, rest: Iterator[bytes], upstream: httpx.Response) -> None:
        self._head = head
        self._rest = rest
        self._upstream = upstream

    def __iter__(self) -> Iterator[bytes]:
        if self._head:
            yield self._head
        yield from self._rest

    def close(self) -> None:
        self._upstream.close()


def read_bounded(
    upstream: httpx.Response, max_bytes: int, deadline_s: float
) -> tuple[bytes, Iterator[bytes] | None]:
    """The decoded body, or (the part read, the rest) when it outgrows ``max_bytes``.

    Decoded with the same bound as every other body (:mod:`oafetch.http.decoding`) and read
    within ``deadline_s``: a stacked-gzip bomb or a dripping robots.txt ends here as it would
    without a cache.

    Raises:
        FetchError: a coding that cannot be bounded, a corrupt stream (``download-error``) or
            a body still arriving at the deadline (``timeout``).
    """
    chunks: list[bytes] = []
    size = 0
    rest = decoded_chunks(upstream, _DECODE_STEP)
    deadline = time.monotonic() + deadline_s
    try:
        for chunk in rest:
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                return b"".join(chunks), rest
            if time.monotonic() > deadline:
                raise FetchError(
                    Reason.TIMEOUT,
                    f"response from {redact_url(str(upstream.url))} still arriving after "
                    f"the {deadline_s:g}s deadline",
                )
    except BaseException:
        upstream.close()
        raise
    upstream.close()
    return b"".join(chunks), None


def _decoded_headers(upstream: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _HOP_HEADERS]


def buffered(upstream: httpx.Response, body: bytes, status: dict[str, bool]) -> httpx.Response:
    """A response carrying the whole decoded ``body``."""
    return httpx.Response(
        upstream.status_code,
        headers=[*_decoded_headers(upstream), ("content-length", str(len(body)))],
        stream=httpx.ByteStream(body),
        extensions={**upstream.extensions, "caching": status},
    )


def chained(
    upstream: httpx.Response, head: bytes, rest: Iterator[bytes], meta: dict[str, Any]
) -> httpx.Response:
    """A response too large to cache: ``head`` (already read), then the rest of upstream."""
    meta["cache"] = "miss"
    return httpx.Response(
        upstream.status_code,
        headers=_decoded_headers(upstream),
        stream=_Chained(head, rest, upstream),
        extensions={**upstream.extensions, "caching": caching()},
    )


def passthrough(upstream: httpx.Response, meta: dict[str, Any], reason: str) -> httpx.Response:
    """``upstream`` handed on untouched and uncached (``reason`` logged at DEBUG)."""
    meta["cache"] = "miss"
    log.debug("not cached (%s): %s", reason, meta.get("url_redacted", ""))
    upstream.extensions["caching"] = caching()
    return upstream
