"""The stamping and schema processors: identity on every span, no row ever lost."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from oafetch.config import TelemetryConfig
from oafetch.telemetry import TelemetrySession, names, processors
from oafetch.telemetry.client_spans import OWN_REQUEST
from oafetch.telemetry.context import identity
from oafetch.telemetry.emit import emit_rate_event
from oafetch.telemetry.jsonl_exporter import JsonlSpanExporter
from oafetch.telemetry.mapping import Record, RunRecord
from oafetch.telemetry.processors import SchemaProcessor, StampingProcessor
from oafetch.telemetry.sqlite_exporter import SqliteSpanExporter


def count(db: Path, table: str, where: str = "1") -> int:
    conn = sqlite3.connect(db)
    try:
        (n,) = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()
    finally:
        conn.close()
    return int(n)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[TelemetrySession]:
    s = TelemetrySession.start(TelemetryConfig(), tmp_path)
    yield s
    s.shutdown()


def attempt(tracer: Tracer, i: int) -> None:
    with tracer.start_as_current_span(
        names.SPAN_ATTEMPT,
        attributes={names.SOURCE: "unpaywall", names.TIER: 1, names.OUTCOME: "success"},
    ) as span:
        span.set_attribute(names.REASON, "ok")
        span.set_attribute(names.ELAPSED_MS, float(i))


# -- no loss ---------------------------------------------------------------------------------------


def test_burst_of_50000_spans_from_8_threads_loses_no_row(tmp_path: Path) -> None:
    """Count in = count out, in SQLite and in spans.jsonl, with nobody waiting politely."""
    n_threads, per_thread = 8, 6_250
    session = TelemetrySession.start(TelemetryConfig(), tmp_path)
    tracer = session.telemetry.tracer
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        start.wait()
        with identity(run_id="burst", work_id=f"w{t}"):
            for i in range(per_thread):
                attempt(tracer, i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert session.shutdown(timeout_s=60)
    total = n_threads * per_thread
    assert count(tmp_path / "telemetry.sqlite", "fallback_attempts", "run_id = 'burst'") == total
    with (tmp_path / "spans.jsonl").open(encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert len(lines) == total
    assert {line["attributes"][names.WORK_ID] for line in lines} == {
        f"w{t}" for t in range(n_threads)
    }
    assert session.spans_dropped == 0


class SlowWriter:
    """Takes 2 ms per batch: the writer falls behind and producers must wait, not drop."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, records: Sequence[Record]) -> None:
        time.sleep(0.002)
        self.written += len(records)

    def begin_run(self, run: RunRecord) -> None:
        pass

    def shutdown(self) -> None:
        pass


def test_backpressure_instead_of_dropping() -> None:
    writer = SlowWriter()
    schema = SchemaProcessor([writer], max_batch=16, max_pending=64, linger_s=0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    for i in range(2_000):
        attempt(tracer, i)
    schema.shutdown()
    assert writer.written == 2_000
    assert schema.spans_dropped == 0


# -- flush and shutdown ----------------------------------------------------------------------------


def test_force_flush_waits_for_everything_ended_before_it(tmp_path: Path) -> None:
    """With a 10 s linger, only a real flush makes the rows visible at once."""
    db = tmp_path / "telemetry.sqlite"
    schema = SchemaProcessor([SqliteSpanExporter(db)], linger_s=10.0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    with identity(run_id="r"):
        for i in range(25):
            attempt(tracer, i)
    started = time.monotonic()
    assert schema.force_flush(9_000) is True
    assert time.monotonic() - started < 9, "the flush did not wait for the 10 s linger"
    assert count(db, "fallback_attempts") == 25
    schema.shutdown()


class BlockedWriter(SlowWriter):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, records: Sequence[Record]) -> None:
        self.release.wait(10)
        self.written += len(records)


def test_force_flush_returns_false_on_timeout() -> None:
    writer = BlockedWriter()
    schema = SchemaProcessor([writer], linger_s=0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    attempt(provider.get_tracer(names.INSTRUMENTATION_SCOPE), 0)
    assert schema.force_flush(100) is False
    writer.release.set()
    assert schema.force_flush(5_000) is True
    schema.shutdown()
    assert writer.written == 1


def test_shutdown_drains_then_counts_late_spans_as_dropped(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    schema = SchemaProcessor([SqliteSpanExporter(db)], linger_s=10.0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    with identity(run_id="r"):
        for i in range(100):
            attempt(tracer, i)
        schema.shutdown()
        assert count(db, "fallback_attempts") == 100
        assert schema.spans_dropped == 0
        attempt(tracer, 101)  # after shutdown: cannot be stored, must be counted
    assert schema.spans_dropped == 1
    schema.shutdown()  # idempotent


# -- failures are counted, never raised ------------------------------------------------------------


class FailingWriter(SlowWriter):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.threads: set[int] = set()

    def write(self, records: Sequence[Record]) -> None:
        self.threads.add(threading.get_ident())
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        self.written += len(records)


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processors, "_RETRY_SLEEPS_S", (0.0, 0.0, 0.0))


@pytest.mark.usefixtures("no_retry_sleep")
def test_transient_writer_failure_is_retried_without_loss() -> None:
    writer = FailingWriter(failures=2)
    schema = SchemaProcessor([writer], linger_s=0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    attempt(provider.get_tracer(names.INSTRUMENTATION_SCOPE), 0)
    schema.shutdown()
    assert writer.written == 1
    assert schema.spans_dropped == 0


@pytest.mark.usefixtures("no_retry_sleep")
def test_persistent_writer_failure_is_counted_and_reaches_run_summary(tmp_path: Path) -> None:
    """A broken JSONL file loses spans; the count lands in run_summary.spans_dropped."""
    db = tmp_path / "telemetry.sqlite"
    broken = FailingWriter(failures=10**9)
    schema = SchemaProcessor([SqliteSpanExporter(db), broken], linger_s=0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    run_attrs = {names.RUN_ID: "broken"}
    with (
        identity(run_id="broken"),
        tracer.start_as_current_span(names.SPAN_RUN, attributes=run_attrs),
    ):
        for i in range(5):
            attempt(tracer, i)  # raises nothing into the caller
        assert schema.force_flush(5_000)
    schema.shutdown()
    assert schema.spans_dropped == 5 + 1  # five attempts, then the run span itself
    assert count(db, "fallback_attempts") == 5, "the healthy writer still got every row"
    ((dropped,),) = rows(db, "SELECT spans_dropped FROM run_summary WHERE run_id = 'broken'")
    assert dropped >= 5
    assert broken.threads == {schema._thread.ident}, "writers run only on the writer thread"


# -- the run_summary row follows the run span ------------------------------------------------------


def test_running_run_is_visible_then_finalised(session: TelemetrySession, tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    tracer = session.telemetry.tracer
    attrs = {names.RUN_ID: "r42", names.CONFIG_HASH: "cafe", names.VERSION: "0.1.0"}
    with identity(run_id="r42"), tracer.start_as_current_span(names.SPAN_RUN, attributes=attrs):
        with identity(work_id="w1"), tracer.start_as_current_span(names.SPAN_WORK) as work:
            work.set_attributes({names.OUTCOME: "skip", names.REASON: "no-candidate"})
        assert session.flush()
        assert rows(db, "SELECT run_id, finished_at, config_hash FROM run_summary") == [
            ("r42", None, "cafe")
        ]
    assert session.flush()
    ((finished, total, dropped, version),) = rows(
        db,
        "SELECT finished_at, artifacts_total, spans_dropped, oafetch_version FROM run_summary",
    )
    assert finished is not None and total == 1 and dropped == 0 and version == "0.1.0"


# -- body bytes find their CLIENT row --------------------------------------------------------------


def client_then_body(tracer: Tracer, *, flush_between: SchemaProcessor | None) -> str:
    with tracer.start_as_current_span(
        "GET",
        kind=SpanKind.CLIENT,
        attributes={names.HTTP_REQUEST_METHOD: "GET", names.ROLE: "artifact"},
    ) as client:
        span_id = format(client.get_span_context().span_id, "016x")
    if flush_between is not None:
        assert flush_between.force_flush(5_000)
    with tracer.start_as_current_span(
        names.SPAN_BODY, attributes={names.BODY_HTTP_SPAN_ID: span_id}
    ) as body:
        body.set_attribute(names.BODY_BYTES, 300_000)
    return span_id


@pytest.mark.parametrize("separate_batches", [False, True])
def test_body_span_fills_bytes_of_its_client_row(tmp_path: Path, separate_batches: bool) -> None:
    db = tmp_path / "telemetry.sqlite"
    schema = SchemaProcessor([SqliteSpanExporter(db)], linger_s=10.0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    with identity(run_id="r"):
        ids = [
            client_then_body(tracer, flush_between=schema if separate_batches else None)
            for _ in range(3)
        ]
    schema.shutdown()
    got = rows(db, "SELECT span_id, bytes, body_ms FROM http_events ORDER BY rowid")
    assert [r[0] for r in got] == ids
    assert all(r[1] == 300_000 and r[2] is not None and r[2] >= 0 for r in got)


def test_body_update_of_a_row_written_by_an_earlier_writer(tmp_path: Path) -> None:
    """A resumed process (new writer, empty rowid memory) still finds the row."""
    db = tmp_path / "telemetry.sqlite"
    first = SchemaProcessor([SqliteSpanExporter(db)], linger_s=0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(first)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    client_attrs = {names.HTTP_REQUEST_METHOD: "GET", names.RUN_ID: "r", names.ROLE: "artifact"}
    with tracer.start_as_current_span(
        "GET", kind=SpanKind.CLIENT, attributes=client_attrs
    ) as client:
        span_id = format(client.get_span_context().span_id, "016x")
    first.shutdown()
    second = SqliteSpanExporter(db)
    second.write(
        [
            {
                "name": names.SPAN_BODY,
                "kind": "INTERNAL",
                "start_ns": 0,
                "end_ns": 5_000_000,
                "attributes": {
                    names.RUN_ID: "r",
                    names.BODY_HTTP_SPAN_ID: span_id,
                    names.BODY_BYTES: 7,
                },
            }
        ]
    )
    second.shutdown()
    assert rows(db, "SELECT bytes, body_ms FROM http_events") == [(7, 5.0)]


# -- stamping --------------------------------------------------------------------------------------


def test_stamping_copies_identity_onto_every_span_explicit_attributes_win(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(StampingProcessor())
    schema = SchemaProcessor([JsonlSpanExporter(out)], linger_s=0)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    httpx_tracer = provider.get_tracer("opentelemetry.instrumentation.httpx")
    with identity(run_id="r1", work_id="w1", artifact_id="a1"):
        token = otel_context.attach(otel_context.set_value(OWN_REQUEST, True))
        with httpx_tracer.start_as_current_span("GET", kind=SpanKind.CLIENT):
            pass  # a CLIENT span of oafetch's own client
        otel_context.detach(token)
        with tracer.start_as_current_span(names.SPAN_WORK, attributes={names.WORK_ID: "mine"}):
            pass
        with httpx_tracer.start_as_current_span("GET", kind=SpanKind.CLIENT):
            pass  # the application's own request, inside oafetch's context all the same
    schema.shutdown()
    client, work, app = (json.loads(line) for line in out.read_text().splitlines())
    assert not any(key.startswith("oafetch.") for key in app["attributes"])
    assert client["attributes"][names.RUN_ID] == "r1"
    assert client["attributes"][names.WORK_ID] == "w1"
    assert client["attributes"][names.ARTIFACT_ID] == "a1"
    assert work["attributes"][names.WORK_ID] == "mine"


def test_span_outside_identity_gets_the_one_open_run(tmp_path: Path) -> None:
    """A rate-limit event from a scheduler thread still lands in its run."""
    out = tmp_path / "spans.jsonl"
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(StampingProcessor())
    schema = SchemaProcessor([JsonlSpanExporter(out)], linger_s=0)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)

    def elsewhere() -> None:
        with tracer.start_as_current_span(names.SPAN_EVENTS):
            pass

    with tracer.start_as_current_span(names.SPAN_RUN, attributes={names.RUN_ID: "only"}):
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
    elsewhere()  # after the run ended: no run to borrow
    schema.shutdown()
    during, _run, after = (json.loads(line) for line in out.read_text().splitlines())
    assert during["attributes"][names.RUN_ID] == "only"
    assert names.RUN_ID not in after["attributes"]


def test_transport_failure_duration_is_recorded_from_client_spans() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    histogram = meters.get_meter("t").create_histogram(names.METRIC_TRANSPORT_FAILURE_DURATION)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(StampingProcessor(failure_duration=histogram))
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    failed: dict[str, AttributeValue] = {
        names.HTTP_REQUEST_METHOD: "GET",
        names.SERVER_ADDRESS: "down.example",
        names.ERROR_TYPE: "ConnectError",
    }
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=failed):
        pass
    answered: dict[str, AttributeValue] = {
        **failed,
        names.HTTP_RESPONSE_STATUS_CODE: 503,
        names.ERROR_TYPE: "503",
    }
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=answered):
        pass
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == names.METRIC_TRANSPORT_FAILURE_DURATION
    ]
    (point,) = metric.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 1
    assert dict(point.attributes or {})[names.ERROR_TYPE] == "ConnectError"
    meters.shutdown()


# -- events beyond a span's share, and spans that cannot be snapshotted ---------------------------


def test_events_past_the_per_span_limit_go_to_carrier_spans_and_all_become_rows(
    session: TelemetrySession, tmp_path: Path
) -> None:
    """The SDK drops events past 128 per span silently; none of ours may reach that limit."""
    tracer = session.telemetry.tracer
    n = names.MAX_EVENTS_PER_SPAN + 50
    with identity(run_id="ev"), tracer.start_as_current_span(names.SPAN_ATTEMPT) as span:
        span.add_event("someone.else")  # an event that is not ours counts against the limit
        for i in range(n):
            emit_rate_event(host="h", role="artifact", action="acquire", delay_ms=float(i))
    assert session.flush()
    assert count(tmp_path / "telemetry.sqlite", "rate_events", "run_id = 'ev'") == n
    lines = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    (attempt_line,) = [x for x in lines if x["name"] == names.SPAN_ATTEMPT]
    assert len(attempt_line["events"]) == names.MAX_EVENTS_PER_SPAN
    carried = [x for x in lines if x["name"] == names.SPAN_EVENTS]
    assert sum(len(x["events"]) for x in carried) == n + 1 - names.MAX_EVENTS_PER_SPAN


def test_a_span_that_cannot_be_snapshotted_is_counted_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = SlowWriter()
    schema = SchemaProcessor([writer], linger_s=0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    attempt(tracer, 0)

    def broken(span: Any) -> Record:
        raise ValueError("cannot")

    monkeypatch.setattr(processors, "to_record", broken)
    attempt(tracer, 1)  # raises nothing into the caller
    schema.shutdown()
    assert writer.written == 1
    assert schema.spans_dropped == 1


def test_ending_spans_does_not_wake_a_lingering_writer() -> None:
    """Only the first span after a quiet spell, a flush or a stop wakes the writer."""
    writer = SlowWriter()
    schema = SchemaProcessor([writer], linger_s=10.0)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(schema)
    tracer = provider.get_tracer(names.INSTRUMENTATION_SCOPE)
    sets: list[int] = []
    real_set = schema._wake.set

    def counting_set() -> None:
        sets.append(1)
        real_set()

    schema._wake.set = counting_set  # type: ignore[method-assign]
    for i in range(500):
        attempt(tracer, i)
    assert len(sets) <= 1, "one wake-up for the first span, none for the other 499"
    assert writer.written == 0, "still lingering"
    assert schema.force_flush(5_000)
    assert writer.written == 500
    schema.shutdown()


def test_large_batches_keep_rowids_and_bodies_find_their_rows(tmp_path: Path) -> None:
    """Rows go in as multi-row INSERTs (64, 32 … 1 per statement); every body still lands."""
    db = tmp_path / "telemetry.sqlite"
    writer = SqliteSpanExporter(db)
    n = 101  # 64 + 32 + 4 + 1 rows per statement
    clients: list[Record] = [
        {
            "name": "GET",
            "kind": "CLIENT",
            "span_id": f"{i:016x}",
            "start_ns": i,
            "end_ns": i + 1_000_000,
            "attributes": {names.HTTP_REQUEST_METHOD: "GET", names.RUN_ID: "r", names.ROLE: "x"},
        }
        for i in range(n)
    ]
    writer.write(clients)
    remembered = dict(writer._rowids)  # the rowids it will update the bodies by
    assert remembered == {
        span_id: rowid for rowid, span_id in rows(db, "SELECT rowid, span_id FROM http_events")
    }
    bodies: list[Record] = [
        {
            "name": names.SPAN_BODY,
            "kind": "INTERNAL",
            "start_ns": 0,
            "end_ns": 2_000_000,
            "attributes": {
                names.RUN_ID: "r",
                names.BODY_HTTP_SPAN_ID: f"{i:016x}",
                names.BODY_BYTES: i,
            },
        }
        for i in range(n)
    ]
    writer.write(bodies)  # a later batch: found through the remembered rowids
    writer.shutdown()
    got = rows(db, "SELECT rowid, span_id, bytes, body_ms FROM http_events ORDER BY rowid")
    assert [(r[1], r[2], r[3]) for r in got] == [(f"{i:016x}", i, 2.0) for i in range(n)]
    assert [r[0] for r in got] == list(range(1, n + 1))


@pytest.mark.parametrize("case", ["bulk", "rowids-shifted", "no-update-from"])
def test_bodies_of_rows_from_an_earlier_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """One bulk UPDATE normally; row by row when a remembered rowid went stale or SQLite is old."""
    from oafetch.telemetry import sqlite_exporter

    if case == "no-update-from":
        monkeypatch.setattr(sqlite_exporter, "_UPDATE_FROM", False)
    if case == "bulk":

        def one_by_one(*args: Any) -> None:
            raise AssertionError("remembered rows are updated in bulk, not one by one")

        monkeypatch.setattr(SqliteSpanExporter, "_update_body", one_by_one)
    db = tmp_path / "telemetry.sqlite"
    writer = SqliteSpanExporter(db)
    attrs = {names.HTTP_REQUEST_METHOD: "GET", names.RUN_ID: "r", names.ROLE: "x"}
    writer.write(
        [
            {"name": "GET", "kind": "CLIENT", "span_id": f"{i:016x}", "attributes": attrs}
            for i in range(5)
        ]
    )
    if case == "rowids-shifted":  # another writer rewrote the rows: same span_ids, new rowids
        conn = sqlite3.connect(db)
        conn.execute("CREATE TEMP TABLE keep AS SELECT * FROM http_events")
        conn.execute("DELETE FROM http_events")
        conn.execute("INSERT INTO http_events SELECT * FROM keep ORDER BY span_id DESC")
        conn.commit()
        conn.close()
    writer.write(
        [
            {
                "name": names.SPAN_BODY,
                "start_ns": 0,
                "end_ns": 1_000_000,
                "attributes": {
                    names.RUN_ID: "r",
                    names.BODY_HTTP_SPAN_ID: f"{i:016x}",
                    names.BODY_BYTES: 10 + i,
                },
            }
            for i in range(5)
        ]
    )
    writer.shutdown()
    got = rows(db, "SELECT span_id, bytes, body_ms FROM http_events ORDER BY span_id")
    assert got == [(f"{i:016x}", 10 + i, 1.0) for i in range(5)]
