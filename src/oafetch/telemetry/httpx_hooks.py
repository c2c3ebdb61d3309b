"""Hooks for the httpx instrumentation's CLIENT span (see :mod:`~oafetch.telemetry.client_spans`).

The outer stages of oafetch's transport stack (cache → breaker → rate limit → *CLIENT span* →
``HTTPTransport``) write what they know about a request into ``request.extensions["oafetch"]``,
a plain dict: ``role``, ``host``, ``url_hash``, ``url_redacted``, ``rate_delay_ms``,
``breaker_state``, ``retry_count``, ``retry_after_s``. :func:`request_hook` copies those facts onto
the CLIENT span and **replaces** ``url.full`` with ``url_redacted`` (the instrumentation removes
only userinfo and ``sig=``; API keys and e-mail addresses ride in query strings). Without
``url_redacted`` the query string is replaced by ``REDACTED``: no credential reaches a span.

:func:`response_hook` (after the headers, before the body) records cache flags, what the circuit
breaker will count (``failure`` for 5xx except a Cloudflare challenge 503, else ``success``),
and writes the CLIENT span's hex span_id into the dict as ``client_span_id`` so the body code can
link its ``oafetch.body`` span to this request.

Both hooks run on the requesting thread, use only the OpenTelemetry API and never raise.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from oafetch.telemetry import names
from oafetch.telemetry._attrs import set_valid_attributes

log = logging.getLogger(__name__)

#: The ``request.extensions`` key of oafetch's per-request facts.
EXTENSION = "oafetch"
#: What replaces a query string that no stage redacted.
REDACTED = "REDACTED"

_OLD_URL = "http.url"
_logged: set[str] = set()


def _log_once(key: str, msg: str) -> None:
    if key not in _logged:
        _logged.add(key)
        log.error(msg, exc_info=True)


def _facts(info: Any) -> MutableMapping[str, Any] | None:
    extensions = getattr(info, "extensions", None)
    if not extensions:
        return None
    facts = extensions.get(EXTENSION)
    return facts if isinstance(facts, MutableMapping) else None


def strip_query(url: str) -> str:
    """``url`` without userinfo, and with any query string replaced by ``REDACTED``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, REDACTED if parts.query else "", ""))


def request_hook(span: Span, request_info: Any) -> None:
    """Copy oafetch's request facts onto the CLIENT span and redact ``url.full``. Never raises."""
    try:
        if not span.is_recording():
            return
        facts = _facts(request_info)
        attrs: dict[str, AttributeValue] = {}
        redacted: object = None
        if facts is not None:
            for key, attr in (
                ("role", names.ROLE),
                ("host", names.HOST),
                ("url_hash", names.URL_HASH),
                ("breaker_state", names.BREAKER_STATE),
            ):
                value = facts.get(key)
                if isinstance(value, str):
                    attrs[attr] = value
            delay = facts.get("rate_delay_ms")
            if isinstance(delay, int | float):
                attrs[names.RATE_DELAY_MS] = float(delay)
            retries = facts.get("retry_count")
            if isinstance(retries, int):
                attrs[names.RETRY_COUNT] = retries
                if retries > 0:
                    attrs[names.HTTP_RESEND_COUNT] = retries
            after = facts.get("retry_after_s")
            if isinstance(after, int | float):
                attrs[names.RETRY_AFTER_S] = float(after)
            redacted = facts.get("url_redacted")
            facts["client_span_id"] = format(span.get_span_context().span_id, "016x")
        safe = (
            redacted
            if isinstance(redacted, str)
            else strip_query(str(getattr(request_info, "url", "")))
        )
        attrs[names.URL_FULL] = safe
        current = getattr(span, "attributes", None)
        if current is not None and _OLD_URL in current:
            attrs[_OLD_URL] = safe  # pre-stable semconv mode: the URL also sits here
        set_valid_attributes(span, attrs)  # every value above is a checked str/float/int
    except Exception:
        _log_once("request", "oafetch: request_hook failed (logged once)")


def _flag(caching: Any, extensions: Any, key: str) -> bool:
    # hishel 1.x/2.x: extensions["caching"] = {"from_cache": …, "revalidated": …, "stored": …};
    # hishel 0.x: extensions["hishel_from_cache"] …. Either may be absent. ``caching`` is None
    # or a mapping (checked once by the caller).
    if caching is not None and caching.get(key):
        return True
    return bool(extensions.get(f"hishel_{key}", False))


def response_hook(span: Span, request_info: Any, response_info: Any) -> None:
    """Record cache flags and the breaker verdict; hand the span_id to the body. Never raises."""
    try:
        if not span.is_recording():
            return
        extensions = getattr(response_info, "extensions", None) or {}
        caching = extensions.get("caching")
        if caching is not None and not isinstance(caching, dict | MutableMapping):
            caching = None
        status = int(getattr(response_info, "status_code", 0) or 0)
        headers = getattr(response_info, "headers", None)
        revalidated = _flag(caching, extensions, "revalidated")
        if not revalidated and status == 304:
            # The cache sits above this span, so its flags are rarely here yet; a 304 to a
            # conditional request is a revalidation all the same.
            req_headers = getattr(request_info, "headers", None)
            if req_headers is not None and (
                "if-none-match" in req_headers or "if-modified-since" in req_headers
            ):
                revalidated = True
        challenge = (
            status == 503
            and headers is not None
            and str(headers.get("cf-mitigated", "")).lower() == "challenge"
        )
        set_valid_attributes(
            span,
            {
                names.FROM_CACHE: _flag(caching, extensions, "from_cache"),
                names.REVALIDATED: revalidated,
                names.STALE: _flag(caching, extensions, "stale"),
                names.BREAKER_RECORDED: "failure" if status >= 500 and not challenge else "success",
            },
        )
        facts = _facts(request_info)
        if facts is not None:
            facts["client_span_id"] = format(span.get_span_context().span_id, "016x")
    except Exception:
        _log_once("response", "oafetch: response_hook failed (logged once)")
