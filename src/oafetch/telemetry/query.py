"""``oafetch telemetry query``: SQL over the store with DuckDB, read-only.

DuckDB's ``sqlite_scanner`` extension is downloaded on first use and so fails offline; instead the
store's tables are read read-only into Arrow (:mod:`oafetch.telemetry.parquet`) and registered in
an in-memory DuckDB under their own names. Only the tables whose names appear in the query are
read (a word match, so a superset of those it uses); the others are registered empty, so
``SHOW TABLES`` and ``DESCRIBE`` still list the whole schema.

Read-only by construction *and* by rule: the query runs on an in-memory copy, so nothing it does
can reach the store, but a statement that would write (INSERT, UPDATE, DELETE, CREATE, DROP,
COPY, ATTACH, SET …) is refused with an error instead of appearing to succeed on the copy and
vanishing. One statement per call; SELECT (with WITH, SHOW, DESCRIBE, SUMMARIZE, which DuckDB
treats as SELECT) and EXPLAIN are accepted. Reading other files from SQL (``read_json(
'runs/a/manifest.jsonl')``) stays possible: it is the user's own data.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import duckdb
import pyarrow as pa

from oafetch.telemetry import parquet, store
from oafetch.telemetry.store import StoreError

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")

_READ_ONLY_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class QueryError(Exception):
    """The SQL is invalid, writes, or failed in DuckDB (the message says which and why)."""


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows (Python values) of one query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def check_read_only(sql: str) -> None:
    """Refuse anything but one read-only statement.

    Raises:
        QueryError: the SQL does not parse, holds several statements, or would write.
    """
    try:
        with contextlib.closing(duckdb.connect()) as duck:
            statements = duck.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL does not parse: {exc}") from exc
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type
    if kind not in _READ_ONLY_TYPES:
        raise QueryError(
            f"refused a {kind.name} statement: telemetry query is read-only (SELECT, WITH, "
            "SHOW, DESCRIBE, SUMMARIZE, EXPLAIN). The store is never modified; to reshape "
            "the data, export it (oafetch telemetry export) and use DuckDB on the Parquet files"
        )


def referenced_tables(sql: str, names: Sequence[str]) -> list[str]:
    """The store tables whose names occur as words in ``sql`` (case-insensitive)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
    return [name for name in names if name.lower() in words]


def run_query(db: str | Path, sql: str) -> QueryResult:
    """Run one read-only SQL statement over the store.

    Raises:
        StoreError: the store is missing or unreadable.
        QueryError: the SQL is refused or fails.
    """
    check_read_only(sql)
    db_path = store.resolve_db_path(db)
    with contextlib.closing(store.open_readonly(db_path)) as conn:
        layout = store.tables(conn)
    wanted = set(referenced_tables(sql, list(layout)))
    duck = duckdb.connect(config={"python_enable_replacements": False})
    try:
        for table, columns in layout.items():
            data = (
                parquet.read_table(db_path, table, columns)
                if table in wanted
                else parquet.arrow_schema(table, columns).empty_table()
            )
            duck.register(table, data)
        try:
            result = duck.sql(sql)
            if result is None:  # not a query after all (DuckDB ran it): nothing to show
                return QueryResult([], [])
            arrow = result.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {exc}") from exc
    finally:
        duck.close()
    return QueryResult(list(arrow.column_names), _rows(arrow))


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    # Arrow converts every DuckDB type (time zones via zoneinfo, without pytz).
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*columns, strict=True)) if columns else []


def _plain(value: Any) -> Any:
    """A JSON-ready value: numbers stay numbers (non-finite floats become null)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def cell_text(value: Any) -> str:
    """A value as text for the table and CSV outputs (NULL is the empty string)."""
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, list | dict):
        return json.dumps(plain)
    return str(plain)


def write_csv(result: QueryResult, out: IO[str]) -> None:
    """Write the result as CSV with a header row."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([cell_text(v) for v in row] for row in result.rows)


def write_json(result: QueryResult, out: IO[str]) -> None:
    """Write the result as a JSON array of objects, one per row."""
    records = [
        {c: _plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows
    ]
    json.dump(records, out, indent=1)
    out.write("\n")


__all__ = [
    "FORMATS",
    "Format",
    "QueryError",
    "QueryResult",
    "StoreError",
    "cell_text",
    "check_read_only",
    "referenced_tables",
    "run_query",
    "write_csv",
    "write_json",
]
