"""The SQLite writer of the local store: ``<out>/telemetry.sqlite``.

Rows come from :mod:`oafetch.telemetry.mapping`; the schema comes from the packaged
``telemetry_schema.sql`` (never restated here). The database runs in WAL mode with
``synchronous=NORMAL`` (a crash may lose the last transactions, never corrupt the file; readers
never block the writer), and each batch is one transaction of ``executemany`` inserts.

Threads: under :class:`~oafetch.telemetry.processors.SchemaProcessor` every call comes from its
one writer thread, which opens the connection on first use. Used as a plain ``SpanExporter``
under an application's own processor, ``export`` may be called from the processor's worker and
from a thread calling ``force_flush``: a lock serialises them on the one connection (opened with
``check_same_thread=False`` for that reason). Only the schema processor guarantees no loss; a
``BatchSpanProcessor`` drops spans when its queue is full.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from oafetch import outdir
from oafetch.telemetry import store
from oafetch.telemetry.mapping import (
    COLUMNS,
    HTTP_EVENTS,
    BodyUpdate,
    Record,
    Row,
    RunRecord,
    map_record,
    to_record,
)

log = logging.getLogger(__name__)

#: File name of the store inside the output directory.
SQLITE_FILE = "telemetry.sqlite"

# Recently inserted http_events rows, span_id → rowid, so that the oafetch.body update of a
# CLIENT span finds its row by primary key (the schema indexes http_events by run_id only).
_ROWID_MEMORY = 65_536

# Every statement costs the writer a GIL release and re-acquisition (sqlite3 steps without the
# GIL); with downloading threads waiting for the GIL each one can become a thread switch on a cold
# cache, which measured ~50-100 µs of CPU per statement in a loaded run. So a batch is a handful of
# statements: multi-row INSERTs with positional parameters (binding named parameters from a dict
# costs a string and a lookup per column; ``executemany`` steps, and switches, once per row), one
# UPDATE for the bodies of rows written by an earlier batch, and the transaction around them.
# Measured per http_events row, alone: named executemany 8.3 µs, positional 5.4 µs, multi-row 3.0.
_VALUES: dict[str, Callable[[Row], tuple[Any, ...]]] = {
    table: operator.itemgetter(*cols) for table, cols in COLUMNS.items()
}
_MAX_PARAMS = 999  # SQLite's historical minimum for SQLITE_MAX_VARIABLE_NUMBER
# Rows per statement: powers of two only, so that a few prepared statements serve every batch
# size (the connection caches them).
_SIZES = (64, 32, 16, 8, 4, 2, 1)
# UPDATE … FROM (VALUES …): SQLite 3.33+; older libraries update one row per statement.
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)


def _multi_values(width: int, rows: int) -> str:
    one = "(" + ", ".join("?" for _ in range(width)) + ")"
    return ", ".join([one] * rows)


@functools.cache
def _insert_sql(table: str, rows: int) -> str:
    cols = COLUMNS[table]
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES {_multi_values(len(cols), rows)}"


@functools.cache
def _update_bodies_sql(rows: int) -> str:
    return (
        "UPDATE http_events SET bytes = v.column3, body_ms = v.column4 "
        f"FROM (VALUES {_multi_values(4, rows)}) AS v "
        "WHERE http_events.rowid = v.column1 AND http_events.span_id = v.column2"
    )


def _run_chunked(
    conn: sqlite3.Connection, sql: Callable[[int], str], flat: list[Any], width: int
) -> tuple[int, int | None]:
    """Run ``sql(k)`` over consecutive chunks of ``flat`` (``width`` values per row), in order.

    Returns:
        The rows changed, and the last inserted rowid (None when nothing ran).
    """
    total = len(flat) // width
    done = changed = 0
    last: int | None = None
    for size in _SIZES:
        if size * width > _MAX_PARAMS:
            continue
        while total - done >= size:
            cur = conn.execute(sql(size), flat[done * width : (done + size) * width])
            changed += cur.rowcount
            last = cur.lastrowid
            done += size
    return changed, last


def _insert_rows(conn: sqlite3.Connection, table: str, rows: list[Row]) -> int | None:
    """Insert ``rows`` in order (their rowids are consecutive); the last rowid."""
    flat = list(itertools.chain.from_iterable(map(_VALUES[table], rows)))
    return _run_chunked(conn, functools.partial(_insert_sql, table), flat, len(COLUMNS[table]))[1]


def schema_sql() -> str:
    """The store's DDL: the packaged ``telemetry_schema.sql``."""
    return files("oafetch.telemetry").joinpath("telemetry_schema.sql").read_text(encoding="utf-8")


class SqliteSpanExporter(SpanExporter):
    """Write oafetch spans as rows of ``telemetry_schema.sql`` into one SQLite file.

    Args:
        path: the database file (created with the schema when absent).
        out_dir: the run's output directory, given to ``summary.finalize_run`` to check stored
            files (default: the database's directory).
        spans_dropped: returns the number of spans lost so far; written into
            ``run_summary.spans_dropped`` when a run ends (the schema processor wires it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        out_dir: str | Path | None = None,
        spans_dropped: Callable[[], int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.out_dir = Path(out_dir) if out_dir is not None else self.path.parent
        self.spans_dropped: Callable[[], int] = spans_dropped or (lambda: 0)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._rowids: OrderedDict[str, int] = OrderedDict()
        self._begun: set[str] = set()
        self._closed = False
        self._warned: set[str] = set()

    # -- connection --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self._closed:
                raise RuntimeError("SqliteSpanExporter is shut down")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            outdir.check_sqlite(self.path)  # no link at the database or its journals
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            try:
                # synchronous=NORMAL first: the DDL's dozen implicit commits then skip their
                # fsyncs in WAL mode (a new store opened in ~6 ms, now ~1 ms).
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(schema_sql())  # idempotent; sets journal_mode=WAL
                store.add_missing_columns(conn)  # a store an older oafetch made
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def prepare(self) -> None:
        """Open the store (and run its DDL) ahead of the first write: the schema processor calls
        it as its writer thread starts, so a run's first flush does not wait for it."""
        with self._lock:
            self._connect()

    # -- the schema processor's fast path --------------------------------------------------------
    def write(self, records: Sequence[Record]) -> None:
        """Insert the rows of ``records`` in one transaction; then finalise any ended run.

        Raises:
            sqlite3.Error, OSError: nothing of this batch was committed (the caller retries).
        """
        with self._lock:
            conn = self._connect()
            tables: dict[str, list[Row]] = {}
            updates: list[BodyUpdate] = []
            runs: list[RunRecord] = []
            for record in records:
                rows = map_record(record)
                for table, table_rows in rows.tables.items():
                    tables.setdefault(table, []).extend(table_rows)
                updates.extend(rows.body_updates)
                if rows.run is not None:
                    runs.append(rows.run)
            if tables or updates:
                self._insert(conn, tables, updates)
            for run in runs:
                self._finalize(conn, run)

    def _insert(
        self, conn: sqlite3.Connection, tables: dict[str, list[Row]], updates: list[BodyUpdate]
    ) -> None:
        http_rows = tables.get(HTTP_EVENTS, [])
        # A body that ends in the same batch as its CLIENT span is merged before the insert.
        pending = {row["span_id"]: row for row in http_rows} if updates and http_rows else {}
        late: list[BodyUpdate] = []
        for upd in updates:
            row = pending.get(upd.http_span_id)
            if row is not None:
                row["bytes"] = upd.bytes
                row["body_ms"] = upd.body_ms
            else:
                late.append(upd)
        new_rowids: list[tuple[str, int]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, rows in tables.items():
                if not rows:
                    continue
                last = _insert_rows(conn, table, rows)
                if table == HTTP_EVENTS and last is not None:
                    # Inside one write transaction SQLite hands out consecutive rowids
                    # (max(rowid)+1 each), so the batch's rowids end at the last one inserted.
                    first = int(last) - len(rows) + 1
                    new_rowids.extend((r["span_id"], first + i) for i, r in enumerate(rows))
            if late:
                self._update_bodies(conn, late)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._remember(new_rowids)

    def _update_bodies(self, conn: sqlite3.Connection, late: list[BodyUpdate]) -> None:
        """Fill bytes/body_ms of rows written by earlier batches: remembered rows in bulk."""
        known = [u for u in late if u.http_span_id in self._rowids] if _UPDATE_FROM else []
        if known:
            flat: list[Any] = []
            for upd in known:
                flat += (self._rowids[upd.http_span_id], upd.http_span_id, upd.bytes, upd.body_ms)
            changed, _ = _run_chunked(conn, _update_bodies_sql, flat, 4)
            if changed == len(known):
                if len(known) == len(late):
                    return
                late = [u for u in late if u.http_span_id not in self._rowids]
            # Otherwise a remembered rowid no longer names its row: each one on its own below
            # (setting the same values twice is harmless).
        for upd in late:
            self._update_body(conn, upd)

    def _update_body(self, conn: sqlite3.Connection, upd: BodyUpdate) -> None:
        rowid = self._rowids.get(upd.http_span_id)
        if rowid is not None:
            cur = conn.execute(
                "UPDATE http_events SET bytes = ?, body_ms = ? WHERE rowid = ? AND span_id = ?",
                (upd.bytes, upd.body_ms, rowid, upd.http_span_id),
            )
            if cur.rowcount:
                return
        # Not remembered (an old row, or a foreign writer shifted rowids): search the run's rows.
        cur = conn.execute(
            "UPDATE http_events SET bytes = ?, body_ms = ? WHERE run_id = ? AND span_id = ?",
            (upd.bytes, upd.body_ms, upd.run_id, upd.http_span_id),
        )
        if not cur.rowcount:
            self._warn_once(
                "orphan-body",
                "oafetch: an oafetch.body span names CLIENT span %s, which has no http_events "
                "row; its bytes/body_ms are not stored. Logged once.",
                upd.http_span_id,
            )

    def _remember(self, pairs: Iterable[tuple[str, int]]) -> None:
        rowids = self._rowids
        for span_id, rowid in pairs:
            rowids[span_id] = rowid
        while len(rowids) > _ROWID_MEMORY:
            rowids.popitem(last=False)

    # -- run_summary -------------------------------------------------------------------------------
    def begin_run(self, run: RunRecord) -> None:
        """Insert the run's ``run_summary`` row as running (``summary.begin_run``)."""
        summary = _summary()
        if summary is None:
            return
        with self._lock:
            conn = self._connect()
            summary.begin_run(
                conn, run.run_id, run.started_at, run.config_hash or "", run.version or ""
            )
            _commit(conn)
            self._begun.add(run.run_id)

    def _finalize(self, conn: sqlite3.Connection, run: RunRecord) -> None:
        summary = _summary()
        if summary is None:
            return
        try:
            if run.run_id not in self._begun:
                summary.begin_run(
                    conn, run.run_id, run.started_at, run.config_hash or "", run.version or ""
                )
            summary.finalize_run(
                conn,
                run.run_id,
                finished_at=run.finished_at if run.finished_at is not None else run.started_at,
                spans_dropped=int(self.spans_dropped()),
                out_dir=self.out_dir,
                spend_calls=run.spend_calls,
                spend_usd=run.spend_usd,
            )
            _commit(conn)
        except Exception:
            # The rows are committed; only the summary is missing. It can be recomputed.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.exception("oafetch: could not finalise run_summary for run %s", run.run_id)

    # -- SpanExporter ------------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Map and write ``spans`` (an application's processor calls this). Never raises."""
        try:
            self.write([to_record(s) for s in spans])
        except Exception:
            self._warn_once("export", "oafetch: SQLite export failed; %d spans lost", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: every ``write`` commits."""
        return True

    def shutdown(self) -> None:
        """Close the connection (later writes raise). Idempotent."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.error(msg, *args, exc_info=key == "export")


def _commit(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("COMMIT")


_summary_missing_logged = False


def _summary() -> Any:
    """``oafetch.telemetry.summary``, imported when first needed (None if unavailable)."""
    global _summary_missing_logged
    try:
        from oafetch.telemetry import summary
    except ImportError:
        if not _summary_missing_logged:
            _summary_missing_logged = True
            log.exception("oafetch: run_summary is not maintained (summary module missing)")
        return None
    return summary
