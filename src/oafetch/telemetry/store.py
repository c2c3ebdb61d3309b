"""Read-only access to the local telemetry store (``telemetry.sqlite``) for the analytics tools.

The analytics commands (``slo``, ``query``, ``export``, ``serve``) never write to the store: they
open it through SQLite's ``file:…?mode=ro`` URI, so a mistake cannot damage a run's record and a
live run keeps writing undisturbed (WAL readers never block the writer). The schema itself comes
from ``telemetry_schema.sql``, loaded from the package, never restated here.

Errors are :class:`StoreError`, whose message says what went wrong, where, and what to do; the
CLI turns them into exit status 2.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

#: The file name of the store inside a run's output directory.
STORE_FILE = "telemetry.sqlite"

_SCHEMA_RESOURCE = "telemetry_schema.sql"


class StoreError(Exception):
    """The store is missing, unreadable, not an oafetch store, or lacks the asked-for run."""


@dataclass(frozen=True)
class Column:
    """One column of a store table, as SQLite declares it."""

    name: str
    decltype: str
    notnull: bool


@dataclass(frozen=True)
class RunInfo:
    """A run known to the store: from ``run_summary`` or, failing that, from its event rows."""

    run_id: str
    started_at: float | None
    finished_at: float | None

    @property
    def running(self) -> bool:
        """True while the run has not been finalised (or was killed before it could be)."""
        return self.finished_at is None


def schema_sql() -> str:
    """The store's DDL, read from the packaged ``telemetry_schema.sql``."""
    return files("oafetch.telemetry").joinpath(_SCHEMA_RESOURCE).read_text(encoding="utf-8")


#: Columns the schema gained after stores were first written: (table, column, declaration).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run_summary", "spend_calls", "INTEGER NOT NULL DEFAULT 0"),
    ("run_summary", "spend_usd", "REAL NOT NULL DEFAULT 0"),
    ("downloads", "identity", "TEXT"),
    ("downloads", "identity_score", "REAL"),
    ("downloads", "identity_evidence", "TEXT"),
    ("downloads", "quarantined", "INTEGER NOT NULL DEFAULT 0"),
    ("run_summary", "identity_mismatch_per_1k", "REAL"),
    ("fallback_attempts", "policy", "TEXT NOT NULL DEFAULT 'configured'"),
    ("fallback_attempts", "rank", "INTEGER"),
    ("fallback_attempts", "requests", "INTEGER"),
    ("downloads", "version", "TEXT"),
    ("downloads", "license", "TEXT"),
    ("downloads", "host_type", "TEXT"),
    ("downloads", "retracted", "INTEGER"),
    ("fallback_attempts", "oa_status", "TEXT"),
)


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """Give a store made by an older oafetch the columns added since (writers call it after
    the DDL, which creates only missing tables)."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if present and column not in present:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {column} {declaration}')


def resolve_db_path(db: str | Path) -> Path:
    """Turn a ``--db`` argument into the store's path (a run directory means its store).

    Raises:
        StoreError: nothing exists at the path.
    """
    path = Path(db).expanduser()
    if path.is_dir():
        path = path / STORE_FILE
    if not path.is_file():
        raise StoreError(
            f"telemetry store not found: {path} "
            f"(expected the {STORE_FILE} that a run writes into its output directory, "
            f"e.g. --db runs/a/{STORE_FILE})"
        )
    return path


def open_readonly(db: str | Path) -> sqlite3.Connection:
    """Open the store read-only and check that it is an oafetch store.

    The connection belongs to the calling thread (``sqlite3``'s default check).

    Raises:
        StoreError: the file is missing, is not SQLite, or has no oafetch tables.
    """
    path = resolve_db_path(db)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = _table_names(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read telemetry store {path}: {exc}") from exc
    if "run_summary" not in tables or "downloads" not in tables:
        conn.close()
        raise StoreError(
            f"{path} is not an oafetch telemetry store (no run_summary/downloads tables); "
            "point --db at the telemetry.sqlite of a run's output directory"
        )
    return conn


def _table_names(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return [str(name) for (name,) in rows]


def tables(conn: sqlite3.Connection) -> dict[str, list[Column]]:
    """Every user table of the store with its declared columns, in declaration order."""
    result: dict[str, list[Column]] = {}
    for name in _table_names(conn):
        info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
        result[name] = [Column(str(row[1]), str(row[2] or ""), bool(row[3])) for row in info]
    return result


def list_runs(conn: sqlite3.Connection) -> list[RunInfo]:
    """Every run the store knows, oldest first.

    A run is known from its ``run_summary`` row or, for a run whose row was never written, from
    its ``downloads``/``http_events`` rows (then it counts as running: it was never finalised).
    """
    runs: dict[str, RunInfo] = {}
    for run_id, started, finished in conn.execute(
        "SELECT run_id, started_at, finished_at FROM run_summary"
    ):
        runs[str(run_id)] = RunInfo(str(run_id), started, finished)
    for run_id, first_ts in conn.execute("SELECT run_id, MIN(ts) FROM downloads GROUP BY run_id"):
        runs.setdefault(str(run_id), RunInfo(str(run_id), first_ts, None))
    # DISTINCT alone is answered from the run_id index; MIN(ts) only for the rare orphan run.
    for (run_id,) in conn.execute("SELECT DISTINCT run_id FROM http_events").fetchall():
        if str(run_id) not in runs:
            (first_ts,) = conn.execute(
                "SELECT MIN(ts) FROM http_events WHERE run_id = ?", (run_id,)
            ).fetchone()
            runs[str(run_id)] = RunInfo(str(run_id), first_ts, None)
    return sorted(runs.values(), key=lambda r: (r.started_at or 0.0, r.run_id))


def holds_only(conn: sqlite3.Connection, table: str, run_id: str) -> bool:
    """True when every row of ``table`` (which must be non-empty) belongs to ``run_id``.

    Two seeks in the table's ``run_id`` index (MIN and MAX), so it costs nothing; readers use it
    to scan a single-run table sequentially instead of through the index (~20 % faster on 1M
    rows, since the index visits rows by one table lookup each).
    """
    lo, hi = conn.execute(
        f'SELECT (SELECT MIN(run_id) FROM "{table}"), (SELECT MAX(run_id) FROM "{table}")'
    ).fetchone()
    return bool(lo == hi == run_id)


def find_run(conn: sqlite3.Connection, run_id: str | None, db: str | Path) -> RunInfo:
    """The run called ``run_id``, or the latest one when ``run_id`` is None.

    Raises:
        StoreError: the store has no runs, or none called ``run_id`` (the message lists them).
    """
    runs = list_runs(conn)
    if not runs:
        raise StoreError(f"telemetry store {db} has no runs yet")
    if run_id is None:
        return runs[-1]
    for run in runs:
        if run.run_id == run_id:
            return run
    raise StoreError(f"unknown run {run_id!r} in {db}; {describe_runs(runs)}")


def describe_runs(runs: list[RunInfo], limit: int = 10) -> str:
    """A one-line list of runs (newest first) for error messages."""
    newest = list(reversed(runs))[:limit]
    shown = ", ".join(f"{r.run_id} ({'running' if r.running else 'finished'})" for r in newest)
    more = f" and {len(runs) - limit} older" if len(runs) > limit else ""
    return f"runs in this store (newest first): {shown}{more}"
