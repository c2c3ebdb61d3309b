"""Thin helpers that put oafetch events on spans, landing on the telemetry schema.

The pipeline uses them, and so can code outside it (custom resolvers, plug-ins): each helper
adds an event to the current span, and the schema exporter maps that event to a row. They are
no-ops when telemetry is off. A span carries at most ``MAX_EVENTS_PER_SPAN`` events; beyond that,
or when no span is recording, the event goes to a short ``oafetch.events`` span of its own, so no
event is ever dropped by the SDK's per-span limit.

Thread-safety: callable from any thread; they never raise.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from oafetch.telemetry import names
from oafetch.telemetry.runtime import Telemetry, active

log = logging.getLogger(__name__)

# Events per span, for spans whose event list cannot be measured (not the SDK's own Span).
_counts: weakref.WeakKeyDictionary[trace.Span, int] = weakref.WeakKeyDictionary()
# Makes "count, then add" atomic, so no span ever gets more than MAX_EVENTS_PER_SPAN of ours.
_counts_lock = threading.Lock()


def _clean(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {k: v for k, v in attributes.items() if v is not None}


def _add_within_limit(
    span: trace.Span, name: str, attrs: dict[str, AttributeValue], stamp: int
) -> bool:
    """Add the event to ``span`` unless it already has ``MAX_EVENTS_PER_SPAN``; True if added."""
    # The SDK span's own event list says how many it holds (one len(), where a weak-keyed
    # dictionary cost two weakrefs and two lookups per event); other spans are counted here.
    events = getattr(span, "_events", None)
    with _counts_lock:
        if events is not None and hasattr(events, "__len__"):
            if len(events) >= names.MAX_EVENTS_PER_SPAN:
                return False
        else:
            n = _counts.get(span, 0)
            if n >= names.MAX_EVENTS_PER_SPAN:
                return False
            _counts[span] = n + 1
        span.add_event(name, attrs, timestamp=stamp)
    return True


def add_event(
    name: str,
    attributes: Mapping[str, AttributeValue | None],
    *,
    telemetry: Telemetry | None = None,
) -> None:
    """Add event ``name`` to the current span, or to a fresh ``oafetch.events`` span.

    ``None`` attribute values are left out. Never raises: telemetry must not break a download.
    """
    handle = telemetry or active()
    if not handle.enabled:
        return
    try:
        attrs = _clean(attributes)
        stamp = time.time_ns()
        span = trace.get_current_span()
        if span.is_recording() and _add_within_limit(span, name, attrs, stamp):
            return
        with handle.tracer.start_as_current_span(names.SPAN_EVENTS) as carrier:
            carrier.add_event(name, attrs, timestamp=stamp)
    except Exception:  # pragma: no cover - defensive: a telemetry bug must not fail a fetch
        log.exception("oafetch: could not record telemetry event %s", name)


def emit_http_event(
    *,
    host: str,
    role: str,
    method: str,
    status: int | None,
    url_hash: str,
    elapsed_ms: float,
    from_cache: bool = False,
    revalidated: bool = False,
    stale: bool = False,
    retry_count: int = 0,
    retry_after_s: float | None = None,
    rate_delay_ms: float | None = None,
    breaker_state: str | None = None,
    breaker_recorded: str | None = None,
    error: str | None = None,
    bytes_: int | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """Record one HTTP attempt without a CLIENT span (a cache hit): an ``http_events`` row."""
    add_event(
        names.EVENT_HTTP,
        {
            names.HOST: host,
            names.ROLE: role,
            names.HTTP_REQUEST_METHOD: method,
            names.HTTP_RESPONSE_STATUS_CODE: status,
            names.URL_HASH: url_hash,
            names.ELAPSED_MS: float(elapsed_ms),
            names.FROM_CACHE: from_cache,
            names.REVALIDATED: revalidated,
            names.STALE: stale,
            names.RETRY_COUNT: retry_count,
            names.RETRY_AFTER_S: retry_after_s,
            names.RATE_DELAY_MS: rate_delay_ms,
            names.BREAKER_STATE: breaker_state,
            names.BREAKER_RECORDED: breaker_recorded,
            names.ERROR_TYPE: error,
            names.BODY_BYTES: bytes_,
        },
        telemetry=telemetry,
    )


def emit_rate_event(
    *,
    host: str,
    role: str,
    action: str,
    delay_ms: float,
    max_delay_ms: float | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """Record a rate-limiter decision (``acquire``, ``block``, ``head_skip``): a ``rate_events``
    row, and for ``acquire`` one ``oafetch.rate_limit.delay`` observation (0 when it did not
    wait)."""
    handle = telemetry or active()
    add_event(
        names.EVENT_RATE_LIMIT,
        {
            names.HOST: host,
            names.ROLE: role,
            names.RATE_ACTION: action,
            names.RATE_DELAY_MS: float(delay_ms),
            names.RATE_MAX_DELAY_MS: max_delay_ms,
        },
        telemetry=handle,
    )
    # One observation per request that took a slot, waits of 0 included: the requests whose
    # http_events.rate_delay_ms the store's p95 ranks, so the live p95 estimates the same figure.
    # A block is no wait (the request is not sent).
    if handle.enabled and action == "acquire":
        handle.instruments.rate_delay.record(delay_ms / 1000.0, {"host": host, "role": role})


def emit_breaker_transition(
    *,
    host: str,
    scope: str,
    old_state: str,
    new_state: str,
    reset_timeout_s: float | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """Record a circuit-breaker state change: a ``breaker_transitions`` row."""
    handle = telemetry or active()
    add_event(
        names.EVENT_BREAKER_TRANSITION,
        {
            names.HOST: host,
            names.BREAKER_SCOPE: scope,
            names.BREAKER_OLD: old_state,
            names.BREAKER_NEW: new_state,
            names.BREAKER_RESET_TIMEOUT_S: reset_timeout_s,
        },
        telemetry=handle,
    )
    if handle.enabled:
        handle.instruments.breaker_transitions.add(
            1, {"host": host, "scope": scope, "new_state": new_state}
        )


def emit_retry(
    *, attempt: int, sleep_s: float, reason: str, telemetry: Telemetry | None = None
) -> None:
    """Record that an HTTP attempt will be retried after ``sleep_s`` seconds."""
    handle = telemetry or active()
    add_event(
        names.EVENT_RETRY,
        {names.RETRY_ATTEMPT: attempt, names.RETRY_SLEEP_S: float(sleep_s), names.REASON: reason},
        telemetry=handle,
    )
    if handle.enabled:
        handle.instruments.retries.add(1, {"reason": reason})


def emit_fallback_attempt(
    *,
    work_id: str,
    source: str,
    outcome: str,
    reason: str,
    tier: str | None = None,
    host: str | None = None,
    status: str | None = None,
    elapsed_ms: float | None = None,
    artifact_id: str | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """Record one source tried for a work outside an ``oafetch.attempt`` span: a
    ``fallback_attempts`` row."""
    handle = telemetry or active()
    add_event(
        names.EVENT_FALLBACK_ATTEMPT,
        {
            names.WORK_ID: work_id,
            names.ARTIFACT_ID: artifact_id,
            names.TIER: tier,
            names.SOURCE: source,
            names.HOST: host,
            names.OUTCOME: outcome,
            names.REASON: reason,
            names.STATUS: status,
            names.ELAPSED_MS: elapsed_ms,
        },
        telemetry=handle,
    )
    if handle.enabled:
        handle.instruments.fallback_attempts.add(1, {"source": source, "outcome": outcome})
