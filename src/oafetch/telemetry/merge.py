"""Combine telemetry shards (one store per cluster task or node) into one store.

A cluster run (``oafetch run --engine ray``) leaves one ``telemetry.sqlite`` per shard under
``<out>/telemetry-shards/``. :func:`merge_stores` rebuilds ``<out>/telemetry.sqlite`` from them:
every event table's rows appended (columns the shard and the store share), and one
``run_summary`` row per run recomputed from the merged events (first start, last finish,
spans dropped and spending summed), so ``oafetch telemetry slo``/``export`` see one run.

The rebuild goes to a temp file replaced atomically: merging again gives the same store.
SQLite's own ``ATTACH`` does the copying (DuckDB's SQLite scanner is an extension fetched at
run time, which an offline cluster node may not have).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from oafetch.telemetry import summary as summary_mod
from oafetch.telemetry.store import StoreError, add_missing_columns, schema_sql

#: Where a cluster run keeps its shards' stores, inside the output directory.
SHARDS_DIR = "telemetry-shards"

_SUMMED = ("spans_dropped", "spend_calls", "spend_usd")


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA {schema}.table_info("{table}")')]


def merge_stores(shards: list[Path], target: Path, *, out_dir: Path | None = None) -> int:
    """Write ``target`` from ``shards``; return how many event rows it holds.

    Raises:
        StoreError: no shard given, or a shard is not an oafetch store.
    """
    if not shards:
        raise StoreError(f"no telemetry shards to merge into {target}")
    temp = target.with_name(f".{target.name}.merge-{os.getpid()}")
    temp.unlink(missing_ok=True)
    conn = sqlite3.connect(temp)
    try:
        conn.executescript(schema_sql())
        add_missing_columns(conn)
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        runs: dict[str, dict[str, Any]] = {}
        rows = 0
        for shard in sorted(shards):
            conn.execute("ATTACH DATABASE ? AS shard", (f"file:{shard}?mode=ro",))
            try:
                rows += _copy_shard(conn, tables, runs, shard)
            finally:
                conn.commit()
                conn.execute("DETACH DATABASE shard")
        for run_id, recorded in runs.items():
            summary_mod.begin_run(
                conn,
                run_id,
                float(recorded["started_at"] or 0.0),
                str(recorded["config_hash"] or ""),
                str(recorded["oafetch_version"] or ""),
            )
            finished = recorded["finished_at"]
            summary_mod.finalize_run(
                conn,
                run_id,
                finished_at=float(finished),
                spans_dropped=int(recorded["spans_dropped"] or 0),
                out_dir=out_dir,
                spend_calls=int(recorded["spend_calls"] or 0),
                spend_usd=float(recorded["spend_usd"] or 0.0),
            )
        conn.commit()
    except sqlite3.DatabaseError as exc:
        conn.close()
        temp.unlink(missing_ok=True)
        raise StoreError(f"cannot merge telemetry shards into {target}: {exc}") from None
    conn.close()
    os.replace(temp, target)
    return rows


def _copy_shard(
    conn: sqlite3.Connection, tables: list[str], runs: dict[str, dict[str, Any]], shard: Path
) -> int:
    present = {r[0] for r in conn.execute("SELECT name FROM shard.sqlite_master")}
    if "run_summary" not in present:
        raise sqlite3.DatabaseError(f"{shard} is not an oafetch telemetry store")
    copied = 0
    for table in tables:
        if table == "run_summary" or table not in present:
            continue
        shared = [c for c in _columns(conn, "main", table) if c in _columns(conn, "shard", table)]
        names = ", ".join(f'"{c}"' for c in shared)
        cur = conn.execute(
            f'INSERT INTO main."{table}" ({names}) SELECT {names} FROM shard."{table}"'
        )
        copied += cur.rowcount
    columns = _columns(conn, "shard", "run_summary")
    for row in conn.execute("SELECT * FROM shard.run_summary"):
        found = dict(zip(columns, row, strict=True))
        run = runs.setdefault(str(found["run_id"]), dict(found))
        if run is found:
            continue
        for key in _SUMMED:
            run[key] = (run.get(key) or 0) + (found.get(key) or 0)
        run["started_at"] = min(run["started_at"] or 0, found["started_at"] or 0)
        if run["finished_at"] is not None and found["finished_at"] is not None:
            run["finished_at"] = max(run["finished_at"], found["finished_at"])
    return copied
