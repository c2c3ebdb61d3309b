"""Combine telemetry shards (one store per cluster task or node) into one store.

An engine run (``oafetch run --processes N``, ``--engine ray``) keeps one ``telemetry.sqlite``
per shard under ``<out>/telemetry-shards/``. The driver appends each shard's rows to
``<out>/telemetry.sqlite`` as the shard is published (:class:`ShardAppender`), so the run's
store fills while it runs, as a one-process run's does, beside the rows of earlier runs; at the
end each run's ``run_summary`` row is recomputed from the merged events (first start, last
finish, spans dropped and spending summed), so ``oafetch telemetry slo``/``export`` see one run.

:func:`merge_stores` (``oafetch telemetry merge``) rebuilds the store from the shards, e.g.
after a killed driver: into a temp file replaced atomically, keeping every row of the runs no
shard holds (a one-process run's), so merging again gives the same store.
SQLite's own ``ATTACH`` does the copying (DuckDB's SQLite scanner is an extension fetched at
run time, which an offline cluster node may not have).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from oafetch import outdir
from oafetch.telemetry import summary as summary_mod
from oafetch.telemetry.store import StoreError, add_missing_columns, schema_sql

#: Where a cluster run keeps its shards' stores, inside the output directory.
SHARDS_DIR = outdir.TELEMETRY_SHARDS

_SUMMED = ("spans_dropped", "spend_calls", "spend_usd")


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA {schema}.table_info("{table}")')]


def _copy_sql(conn: sqlite3.Connection, schema: str, table: str) -> str:
    """``INSERT … SELECT`` of ``table`` from the attached ``schema`` (the columns both have)."""
    theirs = set(_columns(conn, schema, table))
    names = ", ".join(f'"{c}"' for c in _columns(conn, "main", table) if c in theirs)
    return f'INSERT INTO main."{table}" ({names}) SELECT {names} FROM {schema}."{table}"'


class ShardAppender:
    """Appends shards' stores to ``target`` as they come; :meth:`finish` writes each run's
    ``run_summary`` row. One thread uses it (the driver's).

    Args:
        target: the store written (created with the current schema when missing).
        out_dir: the output directory the runs wrote (for the summary's file checks).
    """

    def __init__(self, target: Path, *, out_dir: Path | None = None) -> None:
        self.target = target
        self.out_dir = out_dir
        self.rows = 0
        self.runs: dict[str, dict[str, Any]] = {}  # run id → what its shards recorded
        self._conn: sqlite3.Connection | None = None
        self._tables: list[str] = []

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.target, timeout=30.0)
            try:
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(schema_sql())  # idempotent; WAL, as the span exporter's
                add_missing_columns(conn)
            except BaseException:
                conn.close()
                raise
            self._tables = [
                r[0]
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not r[0].startswith("sqlite_")
            ]
            self._conn = conn
        return self._conn

    def append(self, shard: Path) -> int:
        """Copy every event row of ``shard`` in one transaction; return how many.

        Raises:
            StoreError: ``shard`` is not an oafetch store, or a copy failed (nothing of the
                shard was added then).
        """
        try:
            conn = self._connect()
            conn.execute("ATTACH DATABASE ? AS shard", (f"file:{shard}?mode=ro",))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot merge {shard} into {self.target}: {exc}") from None
        try:
            copied, found = _copy_shard(conn, self._tables, shard)
            for run_id, recorded in found.items():
                if run_id in self.runs:
                    _fold(self.runs[run_id], recorded)
                else:  # the run shows as running while it runs
                    self.runs[run_id] = recorded
                    self._begin(conn, run_id, recorded)
            conn.commit()
        except sqlite3.DatabaseError as exc:
            conn.rollback()
            raise StoreError(f"cannot merge {shard} into {self.target}: {exc}") from None
        finally:
            conn.execute("DETACH DATABASE shard")
        self.rows += copied
        return copied

    def keep(self, store: Path, *, except_runs: set[str]) -> None:
        """Copy every row of ``store`` (run summaries too) for the runs not in ``except_runs``."""
        conn = self._connect()
        conn.execute("ATTACH DATABASE ? AS kept", (f"file:{store}?mode=ro",))
        try:
            present = {r[0] for r in conn.execute("SELECT name FROM kept.sqlite_master")}
            skip = sorted(except_runs)
            marks = ", ".join("?" for _ in skip)
            where = f" WHERE run_id NOT IN ({marks})" if skip else ""
            for table in self._tables:
                if table not in present:
                    continue
                conn.execute(_copy_sql(conn, "kept", table) + where, skip)
            conn.commit()
        finally:
            conn.execute("DETACH DATABASE kept")

    def _begin(self, conn: sqlite3.Connection, run_id: str, recorded: dict[str, Any]) -> None:
        summary_mod.begin_run(
            conn,
            run_id,
            float(recorded.get("started_at") or time.time()),
            str(recorded.get("config_hash") or ""),
            str(recorded.get("oafetch_version") or ""),
        )

    def finish(self) -> None:
        """Write each appended run's ``run_summary`` row from the merged events; close."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            for run_id, recorded in self.runs.items():
                self._begin(conn, run_id, recorded)
                summary_mod.finalize_run(
                    conn,
                    run_id,
                    finished_at=float(recorded.get("finished_at") or time.time()),
                    spans_dropped=int(recorded.get("spans_dropped") or 0),
                    out_dir=self.out_dir,
                    spend_calls=int(recorded.get("spend_calls") or 0),
                    spend_usd=float(recorded.get("spend_usd") or 0.0),
                )
            conn.commit()
        finally:
            conn.close()

    def close(self) -> None:
        """Close without writing summaries (after a failure)."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


def merge_stores(shards: list[Path], target: Path, *, out_dir: Path | None = None) -> int:
    """Rebuild ``target`` from ``shards`` (keeping the rows of runs no shard holds); return how
    many event rows came from the shards.

    Raises:
        StoreError: no shard given, or a shard is not an oafetch store.
    """
    if not shards:
        raise StoreError(f"no telemetry shards to merge into {target}")
    temp = target.with_name(f".{target.name}.merge-{os.getpid()}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{temp}{suffix}").unlink(missing_ok=True)
    appender = ShardAppender(temp, out_dir=out_dir)
    try:
        if target.exists():
            _checkpoint(target)  # its WAL into the file: the copy sees every committed row
            appender.keep(target, except_runs=_runs_of(shards))
        for shard in sorted(shards):
            appender.append(shard)
        appender.finish()
    except (sqlite3.DatabaseError, StoreError) as exc:
        appender.close()
        temp.unlink(missing_ok=True)
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"cannot merge telemetry shards into {target}: {exc}") from None
    os.replace(temp, target)
    return appender.rows


def _checkpoint(store: Path) -> None:
    conn = sqlite3.connect(store, timeout=30.0)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _runs_of(shards: list[Path]) -> set[str]:
    runs: set[str] = set()
    for shard in shards:
        try:
            conn = sqlite3.connect(f"file:{shard}?mode=ro", uri=True)
            try:
                runs.update(str(r[0]) for r in conn.execute("SELECT run_id FROM run_summary"))
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{shard} is not an oafetch telemetry store: {exc}") from None
    return runs


def _fold(run: dict[str, Any], found: dict[str, Any]) -> None:
    """Add a shard's ``run_summary`` row of a run into what the run's earlier shards said."""
    for key in _SUMMED:
        run[key] = (run.get(key) or 0) + (found.get(key) or 0)
    starts = [s for s in (run.get("started_at"), found.get("started_at")) if s]
    run["started_at"] = min(starts) if starts else None
    ends = [e for e in (run.get("finished_at"), found.get("finished_at")) if e]
    run["finished_at"] = max(ends) if ends else None


def _copy_shard(
    conn: sqlite3.Connection, tables: list[str], shard: Path
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Copy the event rows of the attached ``shard``; return them counted, and its runs."""
    present = {r[0] for r in conn.execute("SELECT name FROM shard.sqlite_master")}
    if "run_summary" not in present:
        raise sqlite3.DatabaseError(f"{shard} is not an oafetch telemetry store")
    copied = 0
    for table in tables:
        if table == "run_summary" or table not in present:
            continue
        copied += conn.execute(_copy_sql(conn, "shard", table)).rowcount
    columns = _columns(conn, "shard", "run_summary")
    runs: dict[str, dict[str, Any]] = {}
    for row in conn.execute("SELECT * FROM shard.run_summary"):
        found = dict(zip(columns, row, strict=True))
        if (run := runs.get(str(found["run_id"]))) is not None:
            _fold(run, found)
        else:
            runs[str(found["run_id"])] = found
    return copied, runs
