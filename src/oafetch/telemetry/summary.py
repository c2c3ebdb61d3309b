"""The ``run_summary`` row, computed from the store's event tables.

Contract: every function here is a pure function of the ``sqlite3`` connection it is given (plus,
for the corruption check, the files under the output directory). The SQLite exporter calls
:func:`begin_run` and :func:`finalize_run` on its own thread with its own connection; the
analytics tools call :func:`compute_run_summary` on a read-only connection. Nothing here opens a
connection, starts a thread or keeps state.

Definitions (docs/ANALYTICS.md repeats them for users):

- ``artifacts_total``: ``downloads`` rows of the run (one per work outcome);
  ``artifacts_success``: those with outcome ``success``; ``yield_pct`` = success / total x 100.
- ``ttfp_p50_ms`` / ``ttfp_p95_ms``: nearest-rank percentiles of ``downloads.ttfp_ms`` over
  successes (rows without a ttfp are left out).
- ``cache_hit_pct``: of the ``http_events`` rows with role ``metadata``, the share served
  ``from_cache`` or ``revalidated``, x 100.
- ``rate_delay_p95_ms``: nearest-rank p95 of ``http_events.rate_delay_ms`` for role
  ``metadata`` (rows without a delay are left out).
- ``http_429_ratio``: of the network requests (``from_cache = 0``), the share with status 429
  (a ratio in [0, 1], not a percentage).
- ``breaker_open_events``: ``breaker_transitions`` rows with ``new_state = 'open'``.
- ``dedupe_saved_mb``: bytes of downloads whose ``dedupe_action`` is ``linked`` or
  ``referenced``, in MB (10^6 bytes).
- ``spend_calls`` / ``spend_usd``: what billed sources (``openalex_content``) charged, recorded
  from the ``oafetch.run`` span when the run ends (0 for a store made before these columns).
- ``identity_mismatch_per_1k``: files quarantined by the identity check (``downloads``
  ``quarantined``: PDFs whose first pages named another work) per 1,000 works; ``None`` for a
  store made before the column.
- ``corruption_count``: successes without a sha256 or final path, and — when the output directory
  is given — whose file (``final_path`` is relative to the output directory) is missing or whose
  size differs from ``bytes``; with ``verify_hashes`` also whose sha256 differs.

A ratio or percentile with nothing to measure is ``None`` (SQL NULL), never 0: "no metadata
requests" is not "0 % cache hits".

Nearest-rank percentile: for ``n`` sorted values, the p-th percentile is the value at 1-based rank
``ceil(p/100 x n)``. It is always an observed value, and it is what a person would compute by hand.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oafetch.telemetry import store
from oafetch.tokens import DedupeAction, Outcome, Role

#: ``breaker_transitions.new_state`` of an opening breaker.
BREAKER_OPEN = "open"
#: Bytes in one MB, as ``dedupe_saved_mb`` counts them (SI, like disk vendors and ``du --si``).
BYTES_PER_MB = 1_000_000

_SAVED_ACTIONS = (DedupeAction.LINKED.value, DedupeAction.REFERENCED.value)
_HASH_CHUNK = 1 << 20

#: run_summary columns this module computes from the event tables.
COMPUTED_COLUMNS = (
    "artifacts_total",
    "artifacts_success",
    "yield_pct",
    "ttfp_p50_ms",
    "ttfp_p95_ms",
    "cache_hit_pct",
    "rate_delay_p95_ms",
    "http_429_ratio",
    "breaker_open_events",
    "dedupe_saved_mb",
    "corruption_count",
    "identity_mismatch_per_1k",
)
#: run_summary columns that are recorded, not computed (taken from the existing row).
_RECORDED_COLUMNS = (
    "started_at",
    "finished_at",
    "spans_dropped",
    "config_hash",
    "oafetch_version",
    "spend_calls",
    "spend_usd",
)
# What a recorded column reads as when the run has no row (or the store predates the column).
_RECORDED_DEFAULTS: dict[str, Any] = {"spans_dropped": 0, "spend_calls": 0, "spend_usd": 0.0}


@dataclass(frozen=True)
class CorruptArtifact:
    """A success whose stored file cannot be trusted, and why."""

    work_id: str | None
    final_path: str | None
    problem: str


def nearest_rank(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    return sorted_values[_rank(len(sorted_values), p) - 1]


def _rank(n: int, p: float) -> int:
    # Rounding first keeps 0.95 x 20 at exactly 19 despite binary floating point.
    return min(n, max(1, math.ceil(round(p * n / 100, 9))))


def percentile(
    conn: sqlite3.Connection,
    table: str,
    column: str,
    where: str,
    params: Sequence[Any],
    p: float,
    *,
    count: int | None = None,
) -> float | None:
    """Nearest-rank percentile of ``column`` over the rows matching ``where`` (NULLs left out).

    SQLite sorts with a bounded heap when given ``LIMIT 1 OFFSET k``; reading from the nearer end
    keeps that heap at most half the rows (for p95, 5 %). ``count``, when the caller already
    knows how many non-NULL values match, saves a pass. ``table``, ``column`` and ``where`` are
    trusted SQL from this package, never user input.
    """
    scope = f"FROM {table} WHERE {where} AND {column} IS NOT NULL"
    n = count
    if n is None:
        (n,) = conn.execute(f"SELECT COUNT(*) {scope}", params).fetchone()
    if not n:
        return None
    rank = _rank(int(n), p)
    if rank <= n - rank:
        order, offset = "ASC", rank - 1
    else:
        order, offset = "DESC", n - rank
    row = conn.execute(
        f"SELECT {column} {scope} ORDER BY {column} {order} LIMIT 1 OFFSET ?",
        (*params, offset),
    ).fetchone()
    return float(row[0])


def scan_source(conn: sqlite3.Connection, table: str, run_id: str) -> str:
    """``table``, or ``table NOT INDEXED`` when every row of it belongs to ``run_id``.

    See :func:`oafetch.telemetry.store.holds_only`: a run that is the whole table is read
    faster by a sequential scan than through the ``run_id`` index.
    """
    return f"{table} NOT INDEXED" if store.holds_only(conn, table, run_id) else table


def _pct(part: int | None, whole: int | None) -> float | None:
    return None if not whole else 100.0 * (part or 0) / whole


def begin_run(
    conn: sqlite3.Connection, run_id: str, started_at: float, config_hash: str, version: str
) -> None:
    """Insert the run's ``run_summary`` row as running (``finished_at`` NULL) and commit.

    Beginning a run id that already has a row (a resumed run) marks it running again and keeps
    its first ``started_at``.
    """
    conn.execute(
        "INSERT INTO run_summary (run_id, started_at, config_hash, oafetch_version) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
        "started_at = COALESCE(run_summary.started_at, excluded.started_at), "
        "finished_at = NULL, config_hash = excluded.config_hash, "
        "oafetch_version = excluded.oafetch_version",
        (run_id, started_at, config_hash, version),
    )
    conn.commit()


def compute_run_summary(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    out_dir: Path | None = None,
    verify_hashes: bool = False,
) -> dict[str, Any]:
    """Compute the run's summary from the event tables, without writing anything.

    Args:
        conn: a connection to the store (read-only is enough).
        run_id: the run to summarise.
        out_dir: the run's output directory (the store's directory); None skips the file checks
            of ``corruption_count`` and only checks that successes have a hash and a path.
        verify_hashes: also hash every stored file and compare with its sha256 (slow: reads
            every byte).

    Returns:
        Every ``run_summary`` column by name. Recorded columns (``started_at``, ``finished_at``,
        ``spans_dropped``, ``config_hash``, ``oafetch_version``) come from the existing row, or
        are None (``spans_dropped`` 0) when the run has no row yet.
    """
    present = {r[1] for r in conn.execute("PRAGMA table_info(run_summary)")}
    columns = [c for c in _RECORDED_COLUMNS if c in present]  # an older store lacks some
    row = conn.execute(
        f"SELECT {', '.join(columns)} FROM run_summary WHERE run_id = ?", (run_id,)
    ).fetchone()
    recorded = {c: _RECORDED_DEFAULTS.get(c) for c in _RECORDED_COLUMNS}
    if row is not None:
        recorded.update(zip(columns, row, strict=True))
    summary: dict[str, Any] = {"run_id": run_id, **recorded}
    summary.update(_downloads_figures(conn, run_id))
    summary.update(_http_figures(conn, run_id))
    (summary["breaker_open_events"],) = conn.execute(
        "SELECT COUNT(*) FROM breaker_transitions WHERE run_id = ? AND new_state = ?",
        (run_id, BREAKER_OPEN),
    ).fetchone()
    summary["corruption_count"] = len(
        find_corrupt(conn, run_id, out_dir=out_dir, verify_hashes=verify_hashes)
    )
    return summary


def finalize_run(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    finished_at: float,
    spans_dropped: int,
    out_dir: Path | None,
    verify_hashes: bool = False,
    spend_calls: int = 0,
    spend_usd: float = 0.0,
) -> dict[str, Any]:
    """Compute the run's summary and write it into ``run_summary``, then commit.

    Updates the run's row (inserting it when :func:`begin_run` never ran), sets ``finished_at``,
    ``spans_dropped`` and what billed sources charged (``spend_calls``, ``spend_usd``), and
    commits the connection's transaction. Call it after the last rows of the run were written on
    the same connection (whose store has the current columns: see
    ``store.add_missing_columns``). Arguments as for :func:`compute_run_summary`.

    Returns:
        The row as written.
    """
    summary = compute_run_summary(conn, run_id, out_dir=out_dir, verify_hashes=verify_hashes)
    summary["finished_at"] = finished_at
    summary["spans_dropped"] = spans_dropped
    summary["spend_calls"] = spend_calls
    summary["spend_usd"] = spend_usd
    columns = (*COMPUTED_COLUMNS, "finished_at", "spans_dropped", "spend_calls", "spend_usd")
    values = [summary[c] for c in columns]
    cur = conn.execute(
        f"UPDATE run_summary SET {', '.join(f'{c} = ?' for c in columns)} WHERE run_id = ?",
        (*values, run_id),
    )
    if cur.rowcount == 0:
        conn.execute(
            f"INSERT INTO run_summary (run_id, {', '.join(columns)}) "
            f"VALUES (?, {', '.join('?' for _ in columns)})",
            (run_id, *values),
        )
    conn.commit()
    return summary


def _downloads_figures(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    source = scan_source(conn, "downloads", run_id)
    total, success, saved_bytes = conn.execute(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE outcome = ?), "
        f"SUM(bytes) FILTER (WHERE dedupe_action IN ({', '.join('?' for _ in _SAVED_ACTIONS)})) "
        f"FROM {source} WHERE run_id = ?",
        (Outcome.SUCCESS.value, *_SAVED_ACTIONS, run_id),
    ).fetchone()
    # One row per work: sorting the successes' ttfp in Python beats two SQL sorts.
    ttfp = sorted(
        float(v)
        for (v,) in conn.execute(
            f"SELECT ttfp_ms FROM {source} WHERE run_id = ? AND outcome = ? "
            "AND ttfp_ms IS NOT NULL",
            (run_id, Outcome.SUCCESS.value),
        )
    )
    mismatch_per_1k = None
    if "quarantined" in {r[1] for r in conn.execute("PRAGMA table_info(downloads)")}:
        (quarantined,) = conn.execute(
            f"SELECT SUM(quarantined) FROM {source} WHERE run_id = ?", (run_id,)
        ).fetchone()
        mismatch_per_1k = 1000 * (quarantined or 0) / total if total else None
    return {
        "identity_mismatch_per_1k": mismatch_per_1k,
        "artifacts_total": total,
        "artifacts_success": success,
        "yield_pct": _pct(success, total),
        "ttfp_p50_ms": nearest_rank(ttfp, 50),
        "ttfp_p95_ms": nearest_rank(ttfp, 95),
        "dedupe_saved_mb": (saved_bytes or 0) / BYTES_PER_MB,
    }


def _http_figures(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    # One pass over the run's requests for every count; the percentile needs its own sort.
    # (COUNT … FILTER measured faster than SUM(condition) on a 1M-row table.)
    source = scan_source(conn, "http_events", run_id)
    metadata, hits, delays, network, throttled = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE role = :m), "
        "COUNT(*) FILTER (WHERE role = :m AND (from_cache <> 0 OR revalidated <> 0)), "
        "COUNT(rate_delay_ms) FILTER (WHERE role = :m), "
        "COUNT(*) FILTER (WHERE from_cache = 0), "
        "COUNT(*) FILTER (WHERE from_cache = 0 AND status = 429) "
        f"FROM {source} WHERE run_id = :run",
        {"m": Role.METADATA.value, "run": run_id},
    ).fetchone()
    return {
        "cache_hit_pct": _pct(hits, metadata),
        "rate_delay_p95_ms": percentile(
            conn,
            source,
            "rate_delay_ms",
            "run_id = ? AND role = ?",
            (run_id, Role.METADATA.value),
            95,
            count=delays,
        ),
        "http_429_ratio": None if not network else throttled / network,
    }


def find_corrupt(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    out_dir: Path | None,
    verify_hashes: bool = False,
) -> list[CorruptArtifact]:
    """The run's successes whose stored artifact cannot be trusted (see the module docstring)."""
    sql = (
        "SELECT work_id, sha256, final_path, bytes FROM downloads WHERE run_id = ? AND outcome = ?"
    )
    if out_dir is None:  # without files to check, only rows lacking a hash or path can fail
        sql += " AND (COALESCE(sha256, '') = '' OR COALESCE(final_path, '') = '')"
    rows = conn.execute(sql, (run_id, Outcome.SUCCESS.value))
    return [bad for bad in (_check(row, out_dir, verify_hashes) for row in rows) if bad]


def _check(
    row: tuple[Any, ...], out_dir: Path | None, verify_hashes: bool
) -> CorruptArtifact | None:
    work_id, sha256, final_path, size = row
    if not sha256:
        return CorruptArtifact(work_id, final_path, "success without sha256")
    if not final_path:
        return CorruptArtifact(work_id, final_path, "success without final_path")
    if out_dir is None:
        return None
    path = out_dir / final_path
    try:
        actual_size = os.stat(path).st_size
    except OSError:
        return CorruptArtifact(work_id, final_path, f"file missing: {path}")
    if size is not None and actual_size != size:
        return CorruptArtifact(work_id, final_path, f"size {actual_size} bytes, recorded {size}")
    if verify_hashes:
        try:
            digest = _sha256(path)
        except OSError as exc:
            return CorruptArtifact(work_id, final_path, f"unreadable: {exc}")
        if digest != str(sha256).lower():
            return CorruptArtifact(work_id, final_path, "sha256 differs from the recorded one")
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- breakdowns for the Prometheus endpoint (per host / per role) --------------------------------


def http_429_ratio_by_host(conn: sqlite3.Connection, run_id: str) -> dict[str, float]:
    """Per host, the share of the run's network requests (``from_cache = 0``) answered 429."""
    source = scan_source(conn, "http_events", run_id)
    rows = conn.execute(
        "SELECT COALESCE(host, ''), COUNT(*), COUNT(*) FILTER (WHERE status = 429) "
        f"FROM {source} WHERE run_id = ? AND from_cache = 0 GROUP BY 1",
        (run_id,),
    )
    return {str(host): throttled / n for host, n, throttled in rows if n}


def breaker_opens_by_host(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """Per host, how many times a breaker opened during the run."""
    rows = conn.execute(
        "SELECT COALESCE(host, ''), COUNT(*) FROM breaker_transitions "
        "WHERE run_id = ? AND new_state = ? GROUP BY 1",
        (run_id, BREAKER_OPEN),
    )
    return {str(host): int(n) for host, n in rows}


def rate_delay_p95_by_role(conn: sqlite3.Connection, run_id: str) -> dict[str, float]:
    """Per request role (the ``Role`` tokens), the nearest-rank p95 of ``rate_delay_ms``."""
    source = scan_source(conn, "http_events", run_id)
    roles = [role.value for role in Role]
    # One pass counts every role's delays; then one bounded sort per role that has any.
    counts = conn.execute(
        "SELECT "
        + ", ".join("COUNT(rate_delay_ms) FILTER (WHERE role = ?)" for _ in roles)
        + f" FROM {source} WHERE run_id = ?",
        (*roles, run_id),
    ).fetchone()
    result: dict[str, float] = {}
    for role, count in zip(roles, counts, strict=True):
        value = percentile(
            conn,
            source,
            "rate_delay_ms",
            "run_id = ? AND role = ?",
            (run_id, role),
            95,
            count=count,
        )
        if value is not None:
            result[role] = value
    return result
