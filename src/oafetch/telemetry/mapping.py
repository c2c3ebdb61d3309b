"""The span → row mapping of the local store: a pure function, no I/O, no clock.

A finished span becomes a *record* (:func:`to_record`: a plain JSON-ready dict, the very object
``spans.jsonl`` holds per line), and a record becomes :class:`Rows` for the tables of
``telemetry_schema.sql`` (:func:`map_record`):

==========================================  =====================================================
span or event                               rows
==========================================  =====================================================
CLIENT span with ``http.request.method``    one ``http_events`` row (``bytes``/``body_ms`` NULL)
``oafetch.body`` span                       a :class:`BodyUpdate` of that row (by its span_id)
event ``oafetch.http`` (on any span)        one ``http_events`` row (cache hits: no CLIENT span)
event ``oafetch.rate_limit``                one ``rate_events`` row
event ``oafetch.breaker.transition``        one ``breaker_transitions`` row
``oafetch.attempt`` span                    one ``fallback_attempts`` row
event ``oafetch.fallback_attempt``          one ``fallback_attempts`` row
``oafetch.work`` span with an outcome       one ``downloads`` row
``oafetch.run`` span                        a :class:`RunRecord` (begins/finalises run_summary)
==========================================  =====================================================

Every row carries ``run_id`` (stamped on the span; ``""`` when unknown, never NULL), and the
``trace_id``/``span_id`` (hex) of the span it came from, so it links to its trace.

Rows are dicts keyed by column name; :data:`COLUMNS` gives each table's columns in insertion
order and a test checks them against the schema file, which stays the one source of the DDL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from oafetch.telemetry import names

log = logging.getLogger(__name__)

Record = dict[str, Any]
Row = dict[str, Any]

HTTP_EVENTS = "http_events"
RATE_EVENTS = "rate_events"
BREAKER_TRANSITIONS = "breaker_transitions"
FALLBACK_ATTEMPTS = "fallback_attempts"
DOWNLOADS = "downloads"

COLUMNS: Mapping[str, tuple[str, ...]] = {
    HTTP_EVENTS: (
        "run_id", "ts", "host", "role", "method", "status", "url_hash", "from_cache",
        "revalidated", "stale", "retry_count", "retry_after_s", "rate_delay_ms",
        "breaker_state", "breaker_recorded", "elapsed_ms", "error", "bytes", "body_ms",
        "trace_id", "span_id",
    ),
    RATE_EVENTS: (
        "run_id", "ts", "host", "role", "action", "delay_ms", "max_delay_ms", "trace_id",
        "span_id",
    ),
    BREAKER_TRANSITIONS: (
        "run_id", "ts", "host", "scope", "old_state", "new_state", "reset_timeout_s",
        "trace_id", "span_id",
    ),
    FALLBACK_ATTEMPTS: (
        "run_id", "ts", "work_id", "artifact_id", "tier", "source", "host", "outcome",
        "reason", "status", "elapsed_ms", "trace_id", "span_id", "policy", "rank", "requests",
        "oa_status",
    ),
    DOWNLOADS: (
        "run_id", "ts", "work_id", "artifact_id", "resolver", "outcome", "reason",
        "content_type", "bytes", "sha256", "final_path", "dedupe_action", "ttfp_ms",
        "trace_id", "span_id", "identity", "identity_score", "identity_evidence", "quarantined",
        "version", "license", "host_type", "retracted",
    ),
}  # fmt: skip

# Pre-semconv-stability names, read when the instrumentation runs without
# OTEL_SEMCONV_STABILITY_OPT_IN=http (a process that initialised it before oafetch did).
_OLD_METHOD = "http.method"
_OLD_STATUS = "http.status_code"

_FALLBACK_ERROR = "error"  # tokens.FallbackOutcome.ERROR, for an attempt span that set no outcome


@dataclass(frozen=True)
class BodyUpdate:
    """Fill ``bytes``/``body_ms`` of the ``http_events`` row whose span_id is ``http_span_id``."""

    http_span_id: str
    bytes: int | None
    body_ms: float
    run_id: str


@dataclass(frozen=True)
class RunRecord:
    """What the ``oafetch.run`` span says about its run (``finished_at`` None: still running)."""

    run_id: str
    started_at: float
    finished_at: float | None
    config_hash: str | None
    version: str | None
    spend_calls: int = 0  # what billed sources charged (set on the span when the run ends)
    spend_usd: float = 0.0


@dataclass
class Rows:
    """What one span contributes to the store."""

    tables: dict[str, list[Row]] = field(default_factory=dict)
    body_updates: list[BodyUpdate] = field(default_factory=list)
    run: RunRecord | None = None

    def add(self, table: str, row: Row) -> None:
        self.tables.setdefault(table, []).append(row)

    def count(self) -> int:
        """Rows to insert (updates and the run record not counted)."""
        return sum(len(rows) for rows in self.tables.values())


# -- span → record --------------------------------------------------------------------------------

_resource_cache: dict[int, tuple[object, dict[str, Any]]] = {}


def _resource(span: ReadableSpan) -> dict[str, Any]:
    res = span.resource
    cached = _resource_cache.get(id(res))
    if cached is not None and cached[0] is res:
        return cached[1]
    service = res.attributes.get("service.name")
    out = {"service.name": service} if service is not None else {}
    if len(_resource_cache) > 64:  # a process has one or two resources; never grow unbounded
        _resource_cache.clear()
    _resource_cache[id(res)] = (res, out)
    return out


def _attributes(obj: Any) -> dict[str, Any]:
    # The SDK keeps attributes in a BoundedAttributes whose Mapping interface costs a Python
    # call per key (plus a lock and a list copy to iterate); its plain dict copies in one C call.
    # Measured: to_record 15.7 -> 6 us per span. Falls back to the Mapping interface.
    inner = getattr(obj, "_dict", None)
    if type(inner) is dict:
        return inner.copy()
    return dict(obj) if obj else {}


_KIND_NAMES: dict[Any, str] = {kind: kind.name for kind in SpanKind}  # an Enum's .name is slow
_CODE_NAMES: dict[Any, str] = {code: code.name for code in StatusCode}


def to_record(span: ReadableSpan) -> Record:
    """Turn a finished SDK span into a plain, JSON-ready dict (one line of ``spans.jsonl``).

    Keys: ``name``, ``kind`` (``CLIENT``, ``INTERNAL`` …), ``trace_id``, ``span_id``,
    ``parent_span_id`` (hex or None), ``start_ns``, ``end_ns``, ``status`` (``{"code": …}`` plus
    ``description`` when set), ``attributes``, ``events`` (``name``, ``ts_ns``, ``attributes``),
    ``links`` (``trace_id``, ``span_id``, ``attributes``: a work's link to its run),
    ``resource`` (``service.name``). Sequence-valued attributes stay tuples (JSON arrays).
    """
    ctx = span.context
    parent = span.parent
    status = span.status
    code = status.status_code
    status_out: dict[str, Any] = {"code": _CODE_NAMES.get(code) or code.name}
    if status.description:
        status_out["description"] = status.description
    kind = span.kind
    raw = getattr(span, "_attributes", None)
    attrs = _attributes(raw if raw is not None else span.attributes)
    events = getattr(span, "_events", None)
    if events is None:
        events = span.events
    return {
        "name": span.name,
        "kind": _KIND_NAMES.get(kind) or kind.name,
        "trace_id": format(ctx.trace_id, "032x") if ctx is not None else "",
        "span_id": format(ctx.span_id, "016x") if ctx is not None else "",
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": status_out,
        "attributes": attrs,
        # Most spans have no event: len() is cheaper than copying the SDK's list to iterate it.
        "events": [
            {"name": ev.name, "ts_ns": ev.timestamp, "attributes": _attributes(ev.attributes)}
            for ev in events
        ]
        if len(events)
        else [],
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ]
        if span.links
        else [],
        "resource": _resource(span),
    }


# -- record → rows --------------------------------------------------------------------------------

_warned_no_run_id = False


def _run_id(attrs: Mapping[str, Any], name: str) -> str:
    value = attrs.get(names.RUN_ID)
    if isinstance(value, str):
        return value
    global _warned_no_run_id
    if not _warned_no_run_id:
        _warned_no_run_id = True
        log.warning(
            "oafetch: span %r carries no %s (not started inside telemetry.context.identity()); "
            "its rows get run_id ''. Logged once.",
            name,
            names.RUN_ID,
        )
    return ""


def _flag(value: Any) -> int:
    return 1 if value is True or value == 1 else 0


def _optional_flag(value: Any) -> int | None:
    """A flag whose absence means "not said" (``NULL``), not ``0``."""
    return None if value is None else _flag(value)


def _ms(start_ns: int | None, end_ns: int | None) -> float | None:
    if start_ns is None or end_ns is None:
        return None
    return (end_ns - start_ns) / 1e6


def _s(ns: int | None) -> float:
    return ns / 1e9 if ns is not None else 0.0


def _http_row(
    attrs: Mapping[str, Any],
    *,
    run_id: str,
    ts: float,
    elapsed_ms: float | None,
    trace_id: str,
    span_id: str,
    body_bytes: Any = None,
) -> Row:
    retry_count = attrs.get(names.RETRY_COUNT)
    if retry_count is None:
        retry_count = attrs.get(names.HTTP_RESEND_COUNT, 0)
    status = attrs.get(names.HTTP_RESPONSE_STATUS_CODE, attrs.get(_OLD_STATUS))
    return {
        "run_id": run_id,
        "ts": ts,
        "host": attrs.get(names.HOST, attrs.get(names.SERVER_ADDRESS)),
        "role": attrs.get(names.ROLE),
        "method": attrs.get(names.HTTP_REQUEST_METHOD, attrs.get(_OLD_METHOD)),
        "status": status,
        "url_hash": attrs.get(names.URL_HASH),
        "from_cache": _flag(attrs.get(names.FROM_CACHE)),
        "revalidated": _flag(attrs.get(names.REVALIDATED)),
        "stale": _flag(attrs.get(names.STALE)),
        "retry_count": retry_count,
        "retry_after_s": attrs.get(names.RETRY_AFTER_S),
        "rate_delay_ms": attrs.get(names.RATE_DELAY_MS),
        "breaker_state": attrs.get(names.BREAKER_STATE),
        "breaker_recorded": attrs.get(names.BREAKER_RECORDED),
        "elapsed_ms": elapsed_ms,
        "error": attrs.get(names.ERROR_TYPE),
        "bytes": body_bytes,
        "body_ms": None,
        "trace_id": trace_id,
        "span_id": span_id,
    }


def _fallback_row(
    attrs: Mapping[str, Any],
    span_attrs: Mapping[str, Any],
    *,
    run_id: str,
    ts: float,
    elapsed_ms: Any,
    trace_id: str,
    span_id: str,
) -> Row:
    outcome = attrs.get(names.OUTCOME) or _FALLBACK_ERROR
    return {
        "run_id": run_id,
        "ts": ts,
        "work_id": attrs.get(names.WORK_ID, span_attrs.get(names.WORK_ID)),
        "artifact_id": attrs.get(names.ARTIFACT_ID, span_attrs.get(names.ARTIFACT_ID)),
        "tier": _text(attrs.get(names.TIER)),
        "source": attrs.get(names.SOURCE),
        "host": attrs.get(names.HOST),
        "outcome": outcome,
        "reason": attrs.get(names.REASON),
        "status": _text(attrs.get(names.STATUS)),
        "elapsed_ms": elapsed_ms,
        "trace_id": trace_id,
        "span_id": span_id,
        "policy": attrs.get(names.POLICY) or "configured",
        "rank": attrs.get(names.RANK),
        "requests": attrs.get(names.REQUESTS),
        "oa_status": attrs.get(names.OA_STATUS),
    }


def _text(value: Any) -> str | None:
    # tier/status columns are TEXT; a tier given as an int (1, 2 …) is stored as "1", "2" …
    return None if value is None else str(value)


def map_record(record: Mapping[str, Any]) -> Rows:
    """Map one span record (see :func:`to_record`) to the rows it contributes.

    Pure: the result depends on ``record`` alone. Never raises on missing keys: an attribute
    that is absent becomes NULL (``from_cache``/``revalidated``/``stale`` become 0,
    ``retry_count`` 0, ``run_id`` ``""``).
    """
    rows = Rows()
    name = record.get("name", "")
    attrs: Mapping[str, Any] = record.get("attributes") or {}
    events: Sequence[Mapping[str, Any]] = record.get("events") or ()
    kind = record.get("kind")
    # A CLIENT span is oafetch's when our hooks or the stamping processor marked it: under
    # install(), the application's own HTTP spans must not become http_events rows.
    is_client = (
        kind == "CLIENT"
        and (names.HTTP_REQUEST_METHOD in attrs or _OLD_METHOD in attrs)
        and (names.ROLE in attrs or names.RUN_ID in attrs or names.URL_HASH in attrs)
    )
    if not (is_client or events or name.startswith("oafetch.")):
        return rows  # a span of some other library: nothing for the store
    run_id = _run_id(attrs, name)
    trace_id = record.get("trace_id", "")
    span_id = record.get("span_id", "")
    start_ns = record.get("start_ns")
    end_ns = record.get("end_ns")

    if is_client:
        rows.add(
            HTTP_EVENTS,
            _http_row(
                attrs,
                run_id=run_id,
                ts=_s(start_ns),
                elapsed_ms=_ms(start_ns, end_ns),
                trace_id=trace_id,
                span_id=span_id,
            ),
        )
    elif name == names.SPAN_BODY:
        target = attrs.get(names.BODY_HTTP_SPAN_ID)
        if isinstance(target, str) and target:
            rows.body_updates.append(
                BodyUpdate(
                    http_span_id=target,
                    bytes=attrs.get(names.BODY_BYTES),
                    body_ms=_ms(start_ns, end_ns) or 0.0,
                    run_id=run_id,
                )
            )
    elif name == names.SPAN_ATTEMPT:
        rows.add(
            FALLBACK_ATTEMPTS,
            _fallback_row(
                attrs,
                attrs,
                run_id=run_id,
                ts=_s(start_ns),
                elapsed_ms=_ms(start_ns, end_ns),
                trace_id=trace_id,
                span_id=span_id,
            ),
        )
    elif name == names.SPAN_WORK and attrs.get(names.OUTCOME) is not None:
        rows.add(
            DOWNLOADS,
            {
                "run_id": run_id,
                "ts": _s(end_ns if end_ns is not None else start_ns),
                "work_id": attrs.get(names.WORK_ID),
                "artifact_id": attrs.get(names.ARTIFACT_ID),
                "resolver": attrs.get(names.RESOLVER),
                "outcome": attrs.get(names.OUTCOME),
                "reason": attrs.get(names.REASON),
                "content_type": attrs.get(names.CONTENT_TYPE),
                "bytes": attrs.get(names.BYTES),
                "sha256": attrs.get(names.SHA256),
                "final_path": attrs.get(names.FINAL_PATH),
                "dedupe_action": attrs.get(names.DEDUPE_ACTION),
                "ttfp_ms": attrs.get(names.TTFP_MS),
                "trace_id": trace_id,
                "span_id": span_id,
                "identity": attrs.get(names.IDENTITY),
                "identity_score": attrs.get(names.IDENTITY_SCORE),
                "identity_evidence": attrs.get(names.IDENTITY_EVIDENCE),
                "quarantined": int(attrs.get(names.QUARANTINED) or 0),
                "version": attrs.get(names.FILE_VERSION),
                "license": attrs.get(names.FILE_LICENSE),
                "host_type": attrs.get(names.FILE_HOST_TYPE),
                "retracted": _optional_flag(attrs.get(names.RETRACTED)),
            },
        )
    elif name == names.SPAN_RUN:
        rows.run = RunRecord(
            run_id=run_id,
            started_at=_s(start_ns),
            finished_at=_s(end_ns) if end_ns is not None else None,
            config_hash=attrs.get(names.CONFIG_HASH),
            version=attrs.get(names.VERSION),
            spend_calls=int(attrs.get(names.SPEND_CALLS) or 0),
            spend_usd=float(attrs.get(names.SPEND_USD) or 0.0),
        )

    for event in events:
        _map_event(event, attrs, rows, run_id=run_id, trace_id=trace_id, span_id=span_id)
    return rows


def _map_event(
    event: Mapping[str, Any],
    span_attrs: Mapping[str, Any],
    rows: Rows,
    *,
    run_id: str,
    trace_id: str,
    span_id: str,
) -> None:
    ev_name = event.get("name")
    ev: Mapping[str, Any] = event.get("attributes") or {}
    ts = _s(event.get("ts_ns"))
    if ev_name == names.EVENT_HTTP:
        rows.add(
            HTTP_EVENTS,
            _http_row(
                ev,
                run_id=run_id,
                ts=ts,
                elapsed_ms=ev.get(names.ELAPSED_MS),
                trace_id=trace_id,
                span_id=span_id,
                body_bytes=ev.get(names.BODY_BYTES),
            ),
        )
    elif ev_name == names.EVENT_RATE_LIMIT:
        rows.add(
            RATE_EVENTS,
            {
                "run_id": run_id,
                "ts": ts,
                "host": ev.get(names.HOST),
                "role": ev.get(names.ROLE),
                "action": ev.get(names.RATE_ACTION),
                "delay_ms": ev.get(names.RATE_DELAY_MS),
                "max_delay_ms": ev.get(names.RATE_MAX_DELAY_MS),
                "trace_id": trace_id,
                "span_id": span_id,
            },
        )
    elif ev_name == names.EVENT_BREAKER_TRANSITION:
        rows.add(
            BREAKER_TRANSITIONS,
            {
                "run_id": run_id,
                "ts": ts,
                "host": ev.get(names.HOST),
                "scope": ev.get(names.BREAKER_SCOPE),
                "old_state": ev.get(names.BREAKER_OLD),
                "new_state": ev.get(names.BREAKER_NEW),
                "reset_timeout_s": ev.get(names.BREAKER_RESET_TIMEOUT_S),
                "trace_id": trace_id,
                "span_id": span_id,
            },
        )
    elif ev_name == names.EVENT_FALLBACK_ATTEMPT:
        rows.add(
            FALLBACK_ATTEMPTS,
            _fallback_row(
                ev,
                span_attrs,
                run_id=run_id,
                ts=ts,
                elapsed_ms=ev.get(names.ELAPSED_MS),
                trace_id=trace_id,
                span_id=span_id,
            ),
        )


def map_span(span: ReadableSpan | Mapping[str, Any]) -> Rows:
    """Map a finished span (an SDK ``ReadableSpan`` or an already built record) to rows."""
    if isinstance(span, ReadableSpan):
        return map_record(to_record(span))
    return map_record(span)
