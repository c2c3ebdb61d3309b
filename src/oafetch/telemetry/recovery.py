"""Crash consistency between the manifest and the store: what the manifest says was stored, the
``downloads`` table says too.

The manifest row of a work is appended (and flushed) when the work ends; its ``downloads`` row
reaches SQLite a moment later, through the telemetry writer. A process killed in between
(``kill -9``, a power cut) keeps the first and loses the second. At the next start on the same
output directory, :func:`recover_downloads` inserts every stored work the manifest has and the
store lacks, marked ``dedupe_action = 'recovered'`` (everything else from the manifest row:
run, ts, ids, resolver, bytes, sha256, path, trace id), so the two stores agree again.

Runs before the telemetry session opens the database (no writer thread yet); streams the
manifest through a temporary table, so memory stays flat for any manifest size, and reads it
only from where the last clean close left it (:meth:`oafetch.state.StateStore.telemetry_offset`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oafetch.manifest import read_manifest
from oafetch.telemetry.store import add_missing_columns, schema_sql
from oafetch.tokens import DedupeAction

log = logging.getLogger(__name__)

RECOVERED = DedupeAction.RECOVERED.value
_BATCH = 5000
_COLUMNS = (
    "run_id",
    "ts",
    "work_id",
    "artifact_id",
    "resolver",
    "outcome",
    "reason",
    "content_type",
    "bytes",
    "sha256",
    "final_path",
    "trace_id",
)


def _stored_rows(manifest: Path, offset: int = 0) -> Iterator[tuple[Any, ...]]:
    for _, row, _ in read_manifest(manifest, offset=offset):
        if row is None or row.get("outcome") != "success" or row.get("dry_run"):
            continue
        run_id, work_id = row.get("run_id"), row.get("work_id")
        if not isinstance(run_id, str) or not isinstance(work_id, str):
            continue
        yield (
            run_id,
            float(row.get("ts") or 0.0),
            work_id,
            row.get("artifact_id"),
            row.get("resolver"),
            "success",
            row.get("reason") or "ok",
            row.get("content_type"),
            row.get("bytes"),
            row.get("sha256"),
            row.get("path"),
            row.get("trace_id"),
        )


def recover_downloads(db_path: Path, manifest: Path, *, offset: int = 0) -> int:
    """Insert the manifest's stored works that ``downloads`` lacks; return how many.

    ``offset``: the manifest's rows before this byte are known to be in the store (the state
    index records it when a run with the store closes cleanly), so only the rest is read.

    Never raises: a store that cannot be opened or written is logged and left as it is (the
    manifest stays the record of outcomes).
    """
    if not manifest.exists() or not db_path.exists():
        return 0
    try:
        conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        log.warning("oafetch: cannot check %s against the manifest: %s", db_path.name, exc)
        return 0
    try:
        conn.executescript(schema_sql())
        add_missing_columns(conn)
        conn.execute(
            "CREATE TEMP TABLE manifest_stored ("
            + ", ".join(_COLUMNS)
            + ", PRIMARY KEY (run_id, work_id)) WITHOUT ROWID"
        )
        marks = ", ".join("?" * len(_COLUMNS))
        rows = _stored_rows(manifest, offset)
        while batch := [r for _, r in zip(range(_BATCH), rows, strict=False)]:
            conn.executemany(f"INSERT OR REPLACE INTO manifest_stored VALUES ({marks})", batch)
        conn.execute("BEGIN IMMEDIATE")
        cursor = conn.execute(
            "INSERT INTO downloads (" + ", ".join(_COLUMNS) + ", dedupe_action) "
            "SELECT " + ", ".join(f"m.{c}" for c in _COLUMNS) + ", ? FROM manifest_stored m "
            "WHERE NOT EXISTS (SELECT 1 FROM downloads d WHERE d.run_id = m.run_id "
            "AND d.work_id = m.work_id AND d.outcome = 'success')",
            (RECOVERED,),
        )
        conn.execute("COMMIT")
        recovered = max(cursor.rowcount, 0)
    except sqlite3.Error as exc:
        log.warning("oafetch: could not restore downloads rows from the manifest: %s", exc)
        return 0
    finally:
        conn.close()
    if recovered:
        log.info("restored %d downloads rows from the manifest (a run was killed)", recovered)
    return recovered
