"""The span → row mapping: pure, table-driven, no sockets, no threads, no clock."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from oafetch.telemetry import names
from oafetch.telemetry.mapping import (
    COLUMNS,
    BodyUpdate,
    Rows,
    RunRecord,
    map_record,
    map_span,
    to_record,
)
from oafetch.telemetry.sqlite_exporter import schema_sql

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
T0 = 1_700_000_000_000_000_000  # ns
RUN = {names.RUN_ID: "run-1"}


def record(
    name: str,
    attrs: dict[str, Any] | None = None,
    *,
    kind: str = "INTERNAL",
    events: list[dict[str, Any]] | None = None,
    start_ns: int = T0,
    end_ns: int = T0 + 250_000_000,
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": None,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "status": {"code": "UNSET"},
        "attributes": {**RUN, **(attrs or {})},
        "events": events or [],
        "resource": {"service.name": "oafetch"},
    }


def event(name: str, attrs: dict[str, Any], ts_ns: int = T0 + 1_000_000) -> dict[str, Any]:
    return {"name": name, "ts_ns": ts_ns, "attributes": attrs}


CLIENT_ATTRS: dict[str, AttributeValue] = {
    names.HTTP_REQUEST_METHOD: "GET",
    names.HTTP_RESPONSE_STATUS_CODE: 503,
    names.SERVER_ADDRESS: "api.example.org",
    names.ROLE: "metadata",
    names.HOST: "api.example.org",
    names.URL_HASH: "0123456789abcdef",
    names.RETRY_COUNT: 2,
    names.HTTP_RESEND_COUNT: 2,
    names.RETRY_AFTER_S: 1.5,
    names.RATE_DELAY_MS: 12.5,
    names.BREAKER_STATE: "closed",
    names.BREAKER_RECORDED: "failure",
    names.REVALIDATED: True,
    names.ERROR_TYPE: "503",
}

# (case, record, table, expected subset of the single row)
ROW_CASES: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    (
        "CLIENT span → http_events",
        record("GET", CLIENT_ATTRS, kind="CLIENT"),
        "http_events",
        {
            "run_id": "run-1",
            "ts": T0 / 1e9,
            "host": "api.example.org",
            "role": "metadata",
            "method": "GET",
            "status": 503,
            "url_hash": "0123456789abcdef",
            "from_cache": 0,
            "revalidated": 1,
            "stale": 0,
            "retry_count": 2,
            "retry_after_s": 1.5,
            "rate_delay_ms": 12.5,
            "breaker_state": "closed",
            "breaker_recorded": "failure",
            "elapsed_ms": 250.0,
            "error": "503",
            "bytes": None,
            "body_ms": None,
            "trace_id": TRACE,
            "span_id": SPAN,
        },
    ),
    (
        "CLIENT span that failed in the transport: no status, error.type kept",
        record(
            "GET",
            {
                names.HTTP_REQUEST_METHOD: "GET",
                names.ROLE: "artifact",
                names.ERROR_TYPE: "ConnectError",
            },
            kind="CLIENT",
        ),
        "http_events",
        {"status": None, "error": "ConnectError", "retry_count": 0, "from_cache": 0},
    ),
    (
        "old semconv names are read too",
        record(
            "GET",
            {"http.method": "HEAD", "http.status_code": 200, names.ROLE: "landing"},
            kind="CLIENT",
        ),
        "http_events",
        {"method": "HEAD", "status": 200, "role": "landing"},
    ),
    (
        "oafetch.http event (cache hit) → http_events",
        record(
            names.SPAN_EVENTS,
            events=[
                event(
                    names.EVENT_HTTP,
                    {
                        names.HOST: "api.unpaywall.org",
                        names.ROLE: "metadata",
                        names.HTTP_REQUEST_METHOD: "GET",
                        names.HTTP_RESPONSE_STATUS_CODE: 200,
                        names.URL_HASH: "feedfacefeedface",
                        names.ELAPSED_MS: 0.4,
                        names.FROM_CACHE: True,
                        names.STALE: True,
                        names.BODY_BYTES: 1234,
                    },
                )
            ],
        ),
        "http_events",
        {
            "ts": (T0 + 1_000_000) / 1e9,
            "host": "api.unpaywall.org",
            "from_cache": 1,
            "stale": 1,
            "revalidated": 0,
            "elapsed_ms": 0.4,
            "bytes": 1234,
            "span_id": SPAN,
        },
    ),
    (
        "oafetch.rate_limit event → rate_events",
        record(
            names.SPAN_EVENTS,
            events=[
                event(
                    names.EVENT_RATE_LIMIT,
                    {
                        names.HOST: "api.crossref.org",
                        names.ROLE: "metadata",
                        names.RATE_ACTION: "block",
                        names.RATE_DELAY_MS: 800.0,
                        names.RATE_MAX_DELAY_MS: 500.0,
                    },
                )
            ],
        ),
        "rate_events",
        {
            "run_id": "run-1",
            "host": "api.crossref.org",
            "action": "block",
            "delay_ms": 800.0,
            "max_delay_ms": 500.0,
            "trace_id": TRACE,
        },
    ),
    (
        "oafetch.breaker.transition event → breaker_transitions",
        record(
            names.SPAN_EVENTS,
            events=[
                event(
                    names.EVENT_BREAKER_TRANSITION,
                    {
                        names.HOST: "slow.example",
                        names.BREAKER_SCOPE: "host",
                        names.BREAKER_OLD: "closed",
                        names.BREAKER_NEW: "open",
                        names.BREAKER_RESET_TIMEOUT_S: 60.0,
                    },
                )
            ],
        ),
        "breaker_transitions",
        {
            "host": "slow.example",
            "scope": "host",
            "old_state": "closed",
            "new_state": "open",
            "reset_timeout_s": 60.0,
        },
    ),
    (
        "oafetch.attempt span → fallback_attempts",
        record(
            names.SPAN_ATTEMPT,
            {
                names.WORK_ID: "doi:10.1/x",
                names.ARTIFACT_ID: "a1",
                names.TIER: 2,
                names.SOURCE: "arxiv",
                names.HOST: "arxiv.org",
                names.OUTCOME: "no_pdf",
                names.REASON: "not-pdf",
                names.STATUS: "http-200",
            },
        ),
        "fallback_attempts",
        {
            "work_id": "doi:10.1/x",
            "artifact_id": "a1",
            "tier": "2",
            "source": "arxiv",
            "host": "arxiv.org",
            "outcome": "no_pdf",
            "reason": "not-pdf",
            "status": "http-200",
            "elapsed_ms": 250.0,
        },
    ),
    (
        "an attempt span that set no outcome is an error row",
        record(names.SPAN_ATTEMPT, {names.SOURCE: "core"}),
        "fallback_attempts",
        {"outcome": "error", "source": "core", "reason": None},
    ),
    (
        "oafetch.fallback_attempt event → fallback_attempts (work from the span)",
        record(
            names.SPAN_WORK,
            {names.WORK_ID: "w9", names.ARTIFACT_ID: "a9"},
            events=[
                event(
                    names.EVENT_FALLBACK_ATTEMPT,
                    {
                        names.SOURCE: "doaj",
                        names.OUTCOME: "skipped",
                        names.REASON: "breaker-open",
                        names.ELAPSED_MS: 0.0,
                    },
                )
            ],
        ),
        "fallback_attempts",
        {
            "work_id": "w9",
            "artifact_id": "a9",
            "source": "doaj",
            "outcome": "skipped",
            "reason": "breaker-open",
            "elapsed_ms": 0.0,
            "ts": (T0 + 1_000_000) / 1e9,
        },
    ),
    (
        "oafetch.work span with an outcome → downloads (ts = end)",
        record(
            names.SPAN_WORK,
            {
                names.WORK_ID: "w1",
                names.ARTIFACT_ID: "a1",
                names.OUTCOME: "success",
                names.REASON: "ok",
                names.RESOLVER: "unpaywall",
                names.CONTENT_TYPE: "application/pdf",
                names.BYTES: 300_000,
                names.SHA256: "ab" * 32,
                names.FINAL_PATH: "pdf/w1.pdf",
                names.DEDUPE_ACTION: "stored",
                names.TTFP_MS: 812.0,
            },
        ),
        "downloads",
        {
            "ts": (T0 + 250_000_000) / 1e9,
            "work_id": "w1",
            "resolver": "unpaywall",
            "outcome": "success",
            "bytes": 300_000,
            "final_path": "pdf/w1.pdf",
            "dedupe_action": "stored",
            "ttfp_ms": 812.0,
        },
    ),
]


@pytest.mark.parametrize(
    ("case", "rec", "table", "expected"), ROW_CASES, ids=[c[0] for c in ROW_CASES]
)
def test_record_maps_to_one_row(
    case: str, rec: dict[str, Any], table: str, expected: dict[str, Any]
) -> None:
    rows = map_record(rec)
    assert rows.count() == 1, case
    (row,) = rows.tables[table]
    assert set(row) == set(COLUMNS[table]), "a row fills every column of its table"
    assert {k: row[k] for k in expected} == expected


NO_ROW_CASES: list[tuple[str, dict[str, Any]]] = [
    ("a work span still running (no outcome) gives no downloads row", record(names.SPAN_WORK)),
    ("a run span gives no table row", record(names.SPAN_RUN)),
    ("oafetch.retry events are metrics only", record(
        names.SPAN_ATTEMPT + "x", events=[event(names.EVENT_RETRY, {names.RETRY_ATTEMPT: 1})]
    )),
    ("a foreign INTERNAL span is ignored", record("db.query")),
    (
        "a foreign CLIENT span (not oafetch's request) is ignored",
        {**record("GET", {names.HTTP_REQUEST_METHOD: "GET"}, kind="CLIENT"), "attributes": {
            names.HTTP_REQUEST_METHOD: "GET"
        }},
    ),
    ("a body span without a CLIENT span id updates nothing", record(names.SPAN_BODY)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "rec"), NO_ROW_CASES, ids=[c[0] for c in NO_ROW_CASES])
def test_records_without_rows(case: str, rec: dict[str, Any]) -> None:
    rows = map_record(rec)
    assert rows.count() == 0, case
    assert rows.body_updates == []


def test_body_span_updates_its_client_row() -> None:
    rows = map_record(
        record(
            names.SPAN_BODY,
            {names.BODY_BYTES: 300_000, names.BODY_HTTP_SPAN_ID: "00f067aa0ba902b7"},
            end_ns=T0 + 40_000_000,
        )
    )
    assert rows.count() == 0
    assert rows.body_updates == [
        BodyUpdate(http_span_id="00f067aa0ba902b7", bytes=300_000, body_ms=40.0, run_id="run-1")
    ]


def test_run_span_gives_a_run_record() -> None:
    rows = map_record(record(names.SPAN_RUN, {names.CONFIG_HASH: "c0ffee", names.VERSION: "0.1.0"}))
    assert rows.run == RunRecord(
        run_id="run-1",
        started_at=T0 / 1e9,
        finished_at=(T0 + 250_000_000) / 1e9,
        config_hash="c0ffee",
        version="0.1.0",
    )


def test_missing_run_id_is_empty_string_never_null() -> None:
    rec = record(names.SPAN_ATTEMPT, {names.SOURCE: "x"})
    rec["attributes"].pop(names.RUN_ID)
    (row,) = map_record(rec).tables["fallback_attempts"]
    assert row["run_id"] == ""


def test_events_and_span_row_together() -> None:
    rec = record(
        names.SPAN_ATTEMPT,
        {names.SOURCE: "pmc", names.OUTCOME: "success"},
        events=[
            event(names.EVENT_RATE_LIMIT, {names.HOST: "h", names.RATE_ACTION: "acquire"}),
            event(names.EVENT_RATE_LIMIT, {names.HOST: "h", names.RATE_ACTION: "acquire"}),
            event(names.EVENT_RETRY, {names.RETRY_ATTEMPT: 1}),
        ],
    )
    rows = map_record(rec)
    assert {t: len(r) for t, r in rows.tables.items()} == {
        "fallback_attempts": 1,
        "rate_events": 2,
    }


def test_columns_match_the_schema_file() -> None:
    """COLUMNS restates no DDL: it must name exactly the columns telemetry_schema.sql creates."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema_sql())
    for table, cols in COLUMNS.items():
        declared = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
        assert cols == declared, table
    conn.close()


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_to_record_of_a_real_span_round_trips_through_the_mapping() -> None:
    keep = _Keep()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("parent"),
        tracer.start_as_current_span(
            "GET", kind=SpanKind.CLIENT, attributes={**CLIENT_ATTRS, names.RUN_ID: "r"}
        ) as span,
    ):
        span.add_event(names.EVENT_RETRY, {names.RETRY_SLEEP_S: 1.0, "list": (1, 2)})
    provider.shutdown()
    client = keep.spans[0]
    rec = to_record(client)
    ctx = client.context
    assert rec["kind"] == "CLIENT"
    assert rec["trace_id"] == format(ctx.trace_id, "032x")
    assert rec["span_id"] == format(ctx.span_id, "016x")
    assert rec["parent_span_id"] == format(keep.spans[1].context.span_id, "016x")
    assert rec["end_ns"] - rec["start_ns"] == client.end_time - client.start_time
    assert list(rec["events"][0]["attributes"]["list"]) == [1, 2]
    assert rec["resource"]["service.name"]
    rows: Rows = map_span(client)
    (row,) = rows.tables["http_events"]
    assert row["run_id"] == "r" and row["span_id"] == rec["span_id"]
    assert map_span(rec).tables == rows.tables, "a ReadableSpan and its record map alike"
