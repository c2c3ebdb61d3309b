"""oafetch's span processors: identity stamping, and the schema processor that never drops.

:class:`StampingProcessor` copies run/work identity (``oafetch.telemetry.context``) onto
oafetch's spans at start — its own tracer's, and the CLIENT spans of its own clients (see
:mod:`~oafetch.telemetry.client_spans`), never an application's — and records
``oafetch.http.failure.duration`` for CLIENT spans that ended without a response (the
instrumentation records no duration then).

:class:`SchemaProcessor` feeds the local store. ``on_end`` only snapshots the span into its
record (the JSON-ready dict of :func:`~oafetch.telemetry.mapping.to_record`, a few microseconds)
and appends it to an unbounded queue, without waking the writer; ONE writer thread, waking a few
times a second, turns records into rows and lines and writes them through the exporters (SQLite,
JSONL), so each connection and file handle lives on that thread. Nothing is dropped for lack of
room: if the writer falls far behind (``max_pending`` spans waiting), ending threads wait for it
instead (backpressure). A span is lost only when an exporter keeps failing after retries (disk
full, file removed), or when it ends after ``shutdown``; each such span is counted in
:attr:`SchemaProcessor.spans_dropped` and logged once, and the count lands in
``run_summary.spans_dropped``.

Contract, as OpenTelemetry's ``SpanProcessor``: ``on_start``/``on_end`` run on the thread that
starts/ends the span, never block (save for backpressure) and never raise.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.context import Context, get_current
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from oafetch.telemetry import names
from oafetch.telemetry._attrs import set_valid_attributes
from oafetch.telemetry.client_spans import OWN_REQUEST
from oafetch.telemetry.context import current_identity
from oafetch.telemetry.mapping import Record, RunRecord, to_record

log = logging.getLogger(__name__)

_IDENTITY_KEYS = (names.RUN_ID, names.WORK_ID, names.ARTIFACT_ID)  # context.identity()'s keys


class SchemaWriter(Protocol):
    """What the schema processor drives on its writer thread (the SQLite and JSONL exporters)."""

    def write(self, records: Sequence[Record]) -> None:
        """Persist ``records``; raise if they were not (the processor retries)."""

    def begin_run(self, run: RunRecord) -> None:
        """A run started: make it visible (``run_summary`` row with ``finished_at`` NULL)."""

    def shutdown(self) -> None:
        """Release files and connections."""

    # Optional: ``prepare()``, called once on the writer thread as it starts, opens what the
    # first write would (the SQLite store and its DDL) while the run is still getting ready.
    # Failures are ignored there: the first write tries again and reports.


# -- stamping ------------------------------------------------------------------------------------


class StampingProcessor(SpanProcessor):
    """Stamp ``oafetch.run_id``/``work_id``/``artifact_id`` from the context onto oafetch's spans.

    oafetch's spans are those of its own tracer and the CLIENT spans its own clients start (the
    context says so); the application's spans, on any thread, are left untouched.

    Attributes the span already has win (a span started with an explicit ``oafetch.work_id``
    keeps it). A span started outside any ``identity(run_id=…)`` block — a rate-limit event in
    a scheduler thread, say — gets the run id of the one ``oafetch.run`` span in progress, if
    exactly one is.

    Args:
        failure_duration: the ``oafetch.http.failure.duration`` histogram; when given, every
            CLIENT span that ended with ``error.type`` and no status code (a transport failure)
            records its duration in seconds with ``http.request.method``, ``server.address`` and
            ``error.type``.
    """

    def __init__(self, failure_duration: Histogram | None = None) -> None:
        self._failure_duration = failure_duration
        self._runs: dict[int, str] = {}  # span_id of an open oafetch.run → its run id
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            # The identity values are plain context entries (a Context is a dict): three dict
            # lookups instead of three get_value calls; the same values current_identity finds.
            ctx = parent_context if parent_context is not None else get_current()
            scope = span.instrumentation_scope
            if (scope is None or scope.name != names.INSTRUMENTATION_SCOPE) and not ctx.get(
                OWN_REQUEST
            ):
                return  # the application's span: not oafetch's to stamp
            bounded = span.attributes
            # The SDK's BoundedAttributes answers `in` through a Python-level Mapping method; its
            # plain dict answers in C.
            attrs = getattr(bounded, "_dict", None)
            if type(attrs) is not dict:
                attrs = bounded or {}
            missing: dict[str, AttributeValue] = {}
            for key in _IDENTITY_KEYS:
                value = ctx.get(key)
                if isinstance(value, str) and key not in attrs:
                    missing[key] = value
            if span.name == names.SPAN_RUN:
                run_id = attrs.get(names.RUN_ID, ctx.get(names.RUN_ID))
                if isinstance(run_id, str):
                    with self._lock:
                        self._runs[span.context.span_id] = run_id
            elif names.RUN_ID not in missing and names.RUN_ID not in attrs and len(self._runs) == 1:
                with self._lock:
                    only = next(iter(self._runs.values()), None)
                if only is not None:
                    missing[names.RUN_ID] = only
            if missing:
                set_valid_attributes(span, missing)
        except Exception:  # pragma: no cover - defensive: telemetry must not fail a download
            log.exception("oafetch: could not stamp span %s", getattr(span, "name", "?"))

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if span.name == names.SPAN_RUN:
                with self._lock:
                    self._runs.pop(span.context.span_id, None)
                return
            if self._failure_duration is None or span.kind is not SpanKind.CLIENT:
                return
            attrs = span.attributes or {}
            if not _is_oafetch(span):
                return
            error = attrs.get(names.ERROR_TYPE)
            if error is None or names.HTTP_RESPONSE_STATUS_CODE in attrs:
                return
            if span.start_time is None or span.end_time is None:
                return
            labels: dict[str, Any] = {names.ERROR_TYPE: error}
            for key in (names.HTTP_REQUEST_METHOD, names.SERVER_ADDRESS):
                if key in attrs:
                    labels[key] = attrs[key]
            self._failure_duration.record((span.end_time - span.start_time) / 1e9, labels)
        except Exception:  # pragma: no cover - defensive
            log.exception("oafetch: could not record transport-failure duration")

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _is_oafetch(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    if scope is not None and scope.name == names.INSTRUMENTATION_SCOPE:
        return True
    attrs = span.attributes or {}
    return names.RUN_ID in attrs or names.ROLE in attrs


# -- the schema processor -----------------------------------------------------------------------


@dataclass(frozen=True)
class _RunStarted:
    run: RunRecord


@dataclass(frozen=True)
class _Flush:
    done: threading.Event


@dataclass(frozen=True)
class _Stop:
    done: threading.Event


_RETRY_SLEEPS_S = (0.05, 0.25, 1.0)


class SchemaProcessor(SpanProcessor):
    """Write every finished span to the local store, in end order, without dropping any.

    Args:
        writers: the exporters to write through, in order (e.g. SQLite, then JSONL).
        max_batch: at most this many spans per transaction.
        linger_s: after a first span arrives, wait up to this long for more before writing, so a
            busy run writes a few batches a second instead of waking the writer for every span
            (each batch is a handful of statements, and each statement costs the writer a GIL
            hand-off: 0.2 s measured ~15 % less writer CPU than 0.05 s in a loaded run).
            ``force_flush`` and ``shutdown`` never wait for it.
        max_pending: spans that may wait for the writer before ending threads are made to wait.
        only_oafetch: ignore spans that are not oafetch's (neither from its tracer nor stamped
            with its identity): set when the provider is an application's (``install``).
    """

    def __init__(
        self,
        writers: Sequence[SchemaWriter],
        *,
        max_batch: int = 2048,
        linger_s: float = 0.2,
        max_pending: int = 250_000,
        only_oafetch: bool = False,
    ) -> None:
        self._writers = list(writers)
        self._only_oafetch = only_oafetch
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._max_pending = max_pending
        # The queue is a plain deque: appending never wakes the writer (a futex wake-up and a
        # GIL hand-off per span cost the downloading threads more than the writing itself).
        # The writer is woken only when it sleeps with nothing to do (``_idle``) or for a
        # control item (``_urgent``: flush, stop, a run that starts); otherwise it comes back
        # after ``linger_s`` and takes everything queued by then.
        self._pending: deque[Any] = deque()
        self._wake = threading.Event()
        self._idle = False
        self._urgent = False
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._failing: set[int] = set()  # indexes of writers whose last batch failed for good
        self._logged: set[str] = set()
        self._closed = False
        self._close_lock = threading.Lock()
        for writer in self._writers:
            if hasattr(writer, "spans_dropped"):  # the SQLite writer reports it in run_summary
                setattr(writer, "spans_dropped", lambda: self.spans_dropped)  # noqa: B010
        self._thread = threading.Thread(
            target=self._run, name="oafetch-telemetry-writer", daemon=True
        )
        self._thread.start()

    # -- public ------------------------------------------------------------------------------------
    @property
    def spans_dropped(self) -> int:
        """Spans that never reached every writer (0 in a healthy run)."""
        return self._dropped

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.name != names.SPAN_RUN or self._closed:
            return
        try:
            attrs = span.attributes or {}
            run_id = attrs.get(names.RUN_ID)
            if not isinstance(run_id, str):
                run_id = current_identity(parent_context).get(names.RUN_ID, "")
            config_hash = attrs.get(names.CONFIG_HASH)
            version = attrs.get(names.VERSION)
            self._put_control(
                _RunStarted(
                    RunRecord(
                        run_id=run_id,
                        started_at=(span.start_time or time.time_ns()) / 1e9,
                        finished_at=None,
                        config_hash=config_hash if isinstance(config_hash, str) else None,
                        version=version if isinstance(version, str) else None,
                    )
                )
            )
        except Exception:  # pragma: no cover - defensive
            self._log_once("on_start", "oafetch: could not record the start of a run")

    def on_end(self, span: ReadableSpan) -> None:
        if self._only_oafetch and not _is_oafetch(span):
            return
        if self._closed:
            self._drop(1, "closed", "oafetch: a span ended after telemetry shut down; not stored")
            return
        try:
            # The snapshot is taken here, while the span is still hot in this core's cache, and
            # the SDK objects are freed at once: the writer thread turning 50 ms-old spans into
            # records cost three times as much, and spans kept alive that long doubled the
            # garbage collector's work (measured: 70 µs less CPU per downloaded file).
            record = to_record(span)
        except Exception:
            self._drop(1, "record", "oafetch: a span could not be turned into a record")
            return
        pending = self._pending
        if len(pending) >= self._max_pending and threading.current_thread() is not self._thread:
            self._wait_for_room()
        pending.append(record)
        if self._idle:  # the writer sleeps until woken: this is the first span in a while
            self._idle = False
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Block until every span that ended before this call is written, or the timeout.

        Returns:
            True when all of them are written (or counted as dropped), False on timeout.
        """
        if not self._thread.is_alive():
            return not self._pending
        done = threading.Event()
        self._put_control(_Flush(done))
        return done.wait(max(timeout_millis, 0) / 1000)

    def shutdown(self, timeout_s: float = 120.0) -> None:
        """Write everything still queued, then close the writers. Idempotent.

        Spans that end afterwards are counted as dropped. If the writer cannot drain within
        ``timeout_s`` (a hung disk), what is still queued is counted as dropped.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        done = threading.Event()
        self._put_control(_Stop(done))
        if not done.wait(timeout_s):
            left = sum(1 for item in list(self._pending) if type(item) is dict)
            self._drop(left, "shutdown-timeout", "oafetch: telemetry writer did not drain in time")
            return
        # A span that slipped in behind the stop marker (it ended while shutdown began).
        late = 0
        while True:
            try:
                item = self._pending.popleft()
            except IndexError:
                break
            if type(item) is dict:  # a record
                late += 1
            elif isinstance(item, _Flush):
                item.done.set()
        self._drop(late, "closed", "oafetch: a span ended after telemetry shut down; not stored")

    # -- writer thread -----------------------------------------------------------------------------
    def _put_control(self, item: _RunStarted | _Flush | _Stop) -> None:
        # Order matters (see _run): queue the item, then mark it urgent, then wake the writer.
        self._pending.append(item)
        self._urgent = True
        self._wake.set()

    def _wait_for_room(self) -> None:
        low = self._max_pending // 2
        while len(self._pending) > low and self._thread.is_alive() and not self._closed:
            time.sleep(0.002)

    def _prepare(self) -> None:
        for writer in self._writers:
            prepare = getattr(writer, "prepare", None)
            if callable(prepare):
                try:
                    prepare()
                except Exception:  # the first write retries, and logs if it still fails
                    log.debug("oafetch: could not prepare %s", type(writer).__name__, exc_info=True)

    def _run(self) -> None:
        self._prepare()
        pending = self._pending
        wake = self._wake
        while True:
            wake.clear()
            if not pending:
                # Publish "idle" before looking again: a span appended in between either is
                # seen here or sees the flag and wakes us.
                self._idle = True
                if not pending and not self._urgent:
                    wake.wait()
                self._idle = False
                continue
            if self._linger_s > 0 and not self._urgent:
                wake.wait(self._linger_s)  # a control item cuts it short
            self._urgent = False  # before draining: what made it urgent is already queued
            if self._drain(pending):
                return

    def _drain(self, pending: deque[Any]) -> bool:
        """Write everything queued, in order; True once the stop marker was handled."""
        max_batch = self._max_batch
        batch: list[Record] = []
        while True:
            try:
                item = pending.popleft()
            except IndexError:
                break
            if type(item) is dict:  # a record; the control items are dataclasses
                batch.append(item)
                if len(batch) >= max_batch:
                    self._write(batch)
                    batch = []
                continue
            self._write(batch)  # keep end order around control items
            batch = []
            if isinstance(item, _Stop):
                self._close_writers()
                item.done.set()
                return True
            self._control(item)
        self._write(batch)
        return False

    def _control(self, item: Any) -> None:
        if isinstance(item, _Flush):
            item.done.set()
        elif isinstance(item, _RunStarted):
            for writer in self._writers:
                try:
                    writer.begin_run(item.run)
                except Exception:
                    self._log_once("begin_run", "oafetch: could not record the start of run")

    def _write(self, records: list[Record]) -> None:
        if not records:
            return
        lost = 0
        for index, writer in enumerate(self._writers):
            if not self._write_one(index, writer, records):
                lost = len(records)
        if lost:
            self._drop(lost, "write", "oafetch: telemetry writer failed; spans lost")

    def _write_one(self, index: int, writer: SchemaWriter, records: list[Record]) -> bool:
        # A writer that failed for good last time gets one try, so a dead disk does not make
        # the writer crawl (and, through backpressure, slow the downloads).
        sleeps = () if index in self._failing else _RETRY_SLEEPS_S
        for attempt in range(len(sleeps) + 1):
            try:
                writer.write(records)
            except Exception as exc:
                if attempt < len(sleeps):
                    time.sleep(sleeps[attempt])
                    continue
                self._failing.add(index)
                # a full or read-only disk is the user's to fix, not a bug: no traceback
                self._log_once(
                    f"writer-{index}",
                    "oafetch: %s failed to write telemetry: %s",
                    type(writer).__name__,
                    exc,
                    trace=not isinstance(exc, OSError | sqlite3.OperationalError),
                )
                return False
            self._failing.discard(index)
            return True
        return False  # pragma: no cover - the loop always returns

    def _close_writers(self) -> None:
        for writer in self._writers:
            try:
                writer.shutdown()
            except Exception:
                self._log_once("close", "oafetch: could not close a telemetry writer")

    # -- bookkeeping -------------------------------------------------------------------------------
    def _drop(self, n: int, key: str, msg: str) -> None:
        if n <= 0:
            return
        with self._dropped_lock:
            self._dropped += n
        self._log_once(key, msg + " (counted in run_summary.spans_dropped; logged once)")

    def _log_once(self, key: str, msg: str, *args: Any, trace: bool = True) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        log.error(msg, *args, exc_info=trace and sys.exc_info()[0] is not None)
