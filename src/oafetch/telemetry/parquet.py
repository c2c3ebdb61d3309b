"""Columnar access to the store: SQLite tables as Arrow, and their export to Parquet (ZSTD).

Types come from the columns' declared SQLite types, by SQLite's affinity rules: INTEGER → int64,
TEXT → string, REAL → float64 (BLOB → binary, NUMERIC → float64); ``NOT NULL`` columns are
non-nullable fields. A value that does not fit its declared type is an error, never silently
coerced.

Reading: with ``adbc-driver-sqlite`` installed, rows go from SQLite to Arrow in C (about 3x faster
than building Python rows; on a 1M-row ``http_events`` the difference between ~2.5 s and ~9 s).
Without it, the standard ``sqlite3`` module is used. Both read the store read-only and yield the
same Arrow schema and values (a test holds them equal).

Export layout (``export_store``):

- whole store: ``OUT/<table>.parquet``, one file per table;
- one run (``run_id=``): ``OUT/<table>/run_id=<id>.parquet`` (the id percent-encoded), so that
  exporting runs one by one builds a directory DuckDB, Polars or Spark read with a glob
  (``read_parquet('OUT/http_events/*.parquet')``). Re-exporting a run replaces its files.

Files are written beside their target and renamed into place: a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import tempfile
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from oafetch.telemetry import store
from oafetch.telemetry.store import Column, StoreError

COMPRESSION = "zstd"
#: ZSTD level 1: on http_events as small as the default level 3, and ~25 % faster to write.
COMPRESSION_LEVEL = 1
# Columns whose values are (nearly) unique per row: a dictionary only costs time there.
_UNIQUE_PER_ROW = frozenset({"trace_id", "span_id", "url_hash", "sha256"})
#: Rows per Parquet row group (and per Arrow batch read from SQLite).
ROW_GROUP_ROWS = 131_072
#: How long a reader waits for a lock held by another connection (as ``sqlite3``'s 5 s default).
BUSY_TIMEOUT_MS = 5000
#: Tables exported at once.
EXPORT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _load_adbc() -> ModuleType | None:
    try:
        return importlib.import_module("adbc_driver_sqlite.dbapi")
    except ImportError:
        return None


_ADBC = _load_adbc()
_ADBC_ERRORS: tuple[type[Exception], ...] = (_ADBC.Error,) if _ADBC is not None else ()


def arrow_type(decltype: str) -> pa.DataType:
    """The Arrow type of a SQLite declared type, by SQLite's column-affinity rules (§3.1)."""
    decl = decltype.upper()
    if "INT" in decl:
        return pa.int64()
    if any(word in decl for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in decl or not decl:
        return pa.binary()
    return pa.float64()  # REAL, FLOA, DOUB and NUMERIC


def arrow_schema(table: str, columns: list[Column]) -> pa.Schema:
    """The Arrow schema of a store table (field order, types and nullability as declared)."""
    return pa.schema(
        [pa.field(c.name, arrow_type(c.decltype), nullable=not c.notnull) for c in columns],
        metadata={"oafetch.table": table},
    )


def read_batches(
    db_path: Path,
    table: str,
    columns: list[Column],
    *,
    run_id: str | None = None,
    sequential: bool = False,
) -> Generator[pa.RecordBatch, None, None]:
    """Stream a table (or one run's rows of it) as Arrow record batches of the declared schema.

    ``sequential`` scans the table instead of using its ``run_id`` index (faster when the run is
    most of the table; see :func:`oafetch.telemetry.store.holds_only`). Same rows either way.

    Raises:
        StoreError: the store cannot be read, or a value does not fit its column's type.
    """
    schema = arrow_schema(table, columns)
    source = _quoted(table) + (" NOT INDEXED" if sequential else "")
    where = " WHERE run_id = ?" if run_id is not None else ""
    params: tuple[str, ...] = (run_id,) if run_id is not None else ()
    select = f"SELECT {', '.join(_quoted(c.name) for c in columns)} FROM {source}{where}"
    reader = _adbc_batches if _ADBC is not None else _sqlite_batches
    try:
        yield from reader(db_path, select, params, schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, sqlite3.Error, *_ADBC_ERRORS) as exc:
        raise StoreError(f"cannot read table {table} of {db_path}: {exc}") from exc


def read_table(
    db_path: Path, table: str, columns: list[Column], *, run_id: str | None = None
) -> pa.Table:
    """A whole table (or one run's rows) as an Arrow table; see :func:`read_batches`."""
    return pa.Table.from_batches(
        list(read_batches(db_path, table, columns, run_id=run_id)),
        schema=arrow_schema(table, columns),
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ro_uri(db_path: Path) -> str:
    return f"{db_path.resolve().as_uri()}?mode=ro"


def _sqlite_batches(
    db_path: Path, select: str, params: tuple[str, ...], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    with contextlib.closing(sqlite3.connect(_ro_uri(db_path), uri=True)) as conn:
        cur = conn.execute(select, params)
        while rows := cur.fetchmany(ROW_GROUP_ROWS):
            values = list(zip(*rows, strict=True))
            arrays = [pa.array(col, type=f.type) for col, f in zip(values, schema, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _adbc_batches(
    db_path: Path, select: str, params: tuple[str, ...], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    # The ADBC driver infers each column's type from the first batch's values, so a column that
    # starts with NULLs would become int64 and fail on its first string. A leading row of typed
    # placeholders fixes every type; it is sliced off below.
    placeholders = {pa.int64(): "0", pa.float64(): "0.5", pa.string(): "''", pa.binary(): "x''"}
    typed_row = ", ".join(f"{placeholders[f.type]} AS {_quoted(f.name)}" for f in schema)
    sql = f"SELECT {typed_row} UNION ALL SELECT * FROM ({select})"
    assert _ADBC is not None
    with (
        contextlib.closing(_ADBC.connect(_ro_uri(db_path))) as conn,
        contextlib.closing(conn.cursor()) as cur,
    ):
        # The driver sets no busy timeout: a reader opening while another reader sets up the
        # WAL index (or a live run commits) would fail at once with "database is locked".
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.fetchall()
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(ROW_GROUP_ROWS)})
        cur.execute(sql, params)
        first = True
        for batch in cur.fetch_record_batch():
            if first:
                batch, first = batch.slice(1), False
            yield _conform(batch, schema)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    arrays = [
        col if col.type == f.type else col.cast(f.type)
        for col, f in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class ExportedFile:
    """One Parquet file written by :func:`export_store`."""

    table: str
    path: Path
    rows: int


def export_path(out_dir: Path, table: str, run_id: str | None) -> Path:
    """Where ``export_store`` writes a table (see the module docstring for the layout)."""
    if run_id is None:
        return out_dir / f"{table}.parquet"
    return out_dir / table / f"run_id={quote(run_id, safe='')}.parquet"


def export_store(db: str | Path, out_dir: Path, *, run_id: str | None = None) -> list[ExportedFile]:
    """Export every table of the store (or one run's rows of each) to Parquet with ZSTD.

    ``run_summary`` is exported too (for a run: its one row). Row counts equal the source's at
    the moment of reading; every file holds the declared schema even when it has no rows.

    Raises:
        StoreError: the store is unreadable, the run is unknown, or ``out_dir`` is not writable.
    """
    db_path = store.resolve_db_path(db)
    with contextlib.closing(store.open_readonly(db_path)) as conn:
        if run_id is not None:
            store.find_run(conn, run_id, db_path)
        layout = {
            table: columns
            for table, columns in store.tables(conn).items()
            # a table without runs has nothing to export per run
            if run_id is None or any(c.name == "run_id" for c in columns)
        }
        # A table that holds only this run is scanned, not read through the run_id index.
        whole = {t for t in layout if run_id is not None and store.holds_only(conn, t, run_id)}
        # Largest first, so the big table starts at once and the small ones fill the other worker.
        sizes = {
            t: conn.execute(f"SELECT MAX(rowid) FROM {_quoted(t)}").fetchone()[0] or 0
            for t in layout
        }

    def export_one(table: str) -> ExportedFile:
        columns = layout[table]
        target = export_path(out_dir, table, run_id)
        batches = read_batches(db_path, table, columns, run_id=run_id, sequential=table in whole)
        with contextlib.closing(batches):  # a failed write closes the reader's connection now
            rows = _write_parquet(target, arrow_schema(table, columns), batches)
        return ExportedFile(table, target, rows)

    # Reading (C, in the ADBC driver) and compressing (C, in Arrow) both release the GIL: tables
    # exported side by side take ~35 % less time on two cores (bench/bench_analytics.py).
    with ThreadPoolExecutor(max_workers=min(EXPORT_WORKERS, len(layout) or 1)) as pool:
        done = list(pool.map(export_one, sorted(layout, key=lambda t: -sizes[t])))
    return sorted(done, key=lambda f: f.table)


def _write_parquet(target: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot write Parquet into {target.parent}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    rows = 0
    try:
        with pq.ParquetWriter(
            tmp,
            schema,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            use_dictionary=[n for n in schema.names if n not in _UNIQUE_PER_ROW],
        ) as writer:
            for batch in batches:
                writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
                rows += batch.num_rows
        os.replace(tmp, target)
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def reader_name() -> str:
    """The SQLite→Arrow reader in use: ``adbc`` or ``sqlite3`` (for diagnostics and benchmarks)."""
    return "adbc" if _ADBC is not None else "sqlite3"
