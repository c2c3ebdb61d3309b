"""Crafted telemetry stores with hand-computed figures, for the analytics tests.

``build_store(out_dir)`` writes ``out_dir/telemetry.sqlite`` (schema from the package) and the
files its successes point at, with three finished runs and one running run:

- ``good``: meets every SLO (figures in ``GOOD``),
- ``bad``: misses every SLO (figures in ``BAD``),
- ``sparse``: no requests and no ttfp: most SLIs n/a, passes,
- ``live``: still running (``finished_at`` NULL), computed from its rows.

Each expected figure is worked out by hand in the comments next to the rows that produce it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from oafetch.telemetry import store, summary

GOOD_START, GOOD_END = 1_000.0, 1_000.0 + 7_200.0  # 2 h
BAD_START, BAD_END = 20_000.0, 20_000.0 + 1_800.0  # 0.5 h
SPARSE_START, SPARSE_END = 30_000.0, 30_060.0
LIVE_START = 40_000.0

# yield 18/20 = 90 %; ttfp 100…1800 step 100: p50 rank ceil(9)=9 → 900, p95 rank ceil(17.1)=18
# → 1800; cache hits (6 from_cache + 1 revalidated) / 10 metadata = 70 %; metadata delays
# 10, 20, 30, 200: p95 rank ceil(3.8)=4 → 200; 429: 1 of 60 network requests (4 metadata + 56
# artifact) = 1/60; breaker opens 3 in 2 h = 1.5 /h; dedupe 1.5 MB + 0.5 MB = 2.0 MB.
GOOD: dict[str, Any] = {
    "artifacts_total": 20,
    "artifacts_success": 18,
    "yield_pct": 90.0,
    "ttfp_p50_ms": 900.0,
    "ttfp_p95_ms": 1800.0,
    "cache_hit_pct": 70.0,
    "rate_delay_p95_ms": 200.0,
    "http_429_ratio": 1 / 60,
    "breaker_open_events": 3,
    "dedupe_saved_mb": 2.0,
    "corruption_count": 0,
    "breaker_opens_per_hour": 1.5,
    "identity_mismatch_per_1k": 0.0,
}
# yield 5/10 = 50 %; ttfp 1000, 4000, 5000, 25000, 30000: p50 rank 3 → 5000, p95 rank 5 → 30000;
# cache 1 of 4 metadata = 25 %; delays 100, 300, 400: p95 rank ceil(2.85)=3 → 400; 429: 3 of 10
# network requests; opens 7 in 0.5 h = 14 /h; corruption: one success without sha256, one whose
# file is missing, one whose size differs = 3 (without the output dir only the first counts).
BAD: dict[str, Any] = {
    "artifacts_total": 10,
    "artifacts_success": 5,
    "yield_pct": 50.0,
    "ttfp_p50_ms": 5000.0,
    "ttfp_p95_ms": 30000.0,
    "cache_hit_pct": 25.0,
    "rate_delay_p95_ms": 400.0,
    "http_429_ratio": 0.3,
    "breaker_open_events": 7,
    "dedupe_saved_mb": 0.0,
    "corruption_count": 3,
    "breaker_opens_per_hour": 14.0,
    "identity_mismatch_per_1k": 500.0,  # 5 files quarantined for 10 works
}
# live: 3 works, 2 successes (66.67 %), ttfp 1000 and 3000 → p50 1000, p95 3000; metadata
# 2 rows, both cached → 100 %; artifact hosts: a.example 1 of 2 network requests 429 (0.5),
# b.example 0 of 1; breaker: a.example opened twice.
LIVE: dict[str, Any] = {
    "artifacts_total": 3,
    "artifacts_success": 2,
    "yield_pct": 200 / 3,
    "ttfp_p50_ms": 1000.0,
    "ttfp_p95_ms": 3000.0,
    "cache_hit_pct": 100.0,
    "http429_by_host": {"a.example": 0.5, "b.example": 0.0},
    "opens_by_host": {"a.example": 2},
}


def insert(conn: sqlite3.Connection, table: str, **values: Any) -> None:
    """Insert one row; unnamed columns take their defaults."""
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(values.values()))


def _artifact(out_dir: Path, name: str, size: int) -> tuple[str, str, int]:
    """Write a file of ``size`` bytes under ``pdf/``; return (final_path, sha256, size)."""
    rel = f"pdf/{name}.pdf"
    data = (b"%PDF-1.7 " + name.encode() * size)[:size]
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel, hashlib.sha256(data).hexdigest(), size


def _download(
    conn: sqlite3.Connection,
    out_dir: Path,
    run: str,
    n: int,
    ok: bool,
    ttfp: float | None,
    dedupe: str | None = None,
    size: int = 64,
) -> None:
    path, sha, nbytes = _artifact(out_dir, f"{run}-W{n}", size) if ok else (None, None, None)
    insert(
        conn,
        "downloads",
        run_id=run,
        ts=n,
        work_id=f"W{n}",
        artifact_id=f"W{n}",
        resolver="unpaywall",
        outcome="success" if ok else "error",
        reason="ok" if ok else "not-found",
        content_type="application/pdf" if ok else None,
        bytes=nbytes,
        sha256=sha,
        final_path=path,
        dedupe_action=dedupe,
        ttfp_ms=ttfp if ok else None,
    )


def _http(conn: sqlite3.Connection, run: str, role: str, **values: Any) -> None:
    values.setdefault("status", 200)
    insert(conn, "http_events", run_id=run, ts=1.0, role=role, method="GET", **values)


def _opens(conn: sqlite3.Connection, run: str, host: str, n: int) -> None:
    for _ in range(n):
        insert(
            conn,
            "breaker_transitions",
            run_id=run,
            ts=1.0,
            host=host,
            scope="host",
            old_state="closed",
            new_state="open",
            reset_timeout_s=30.0,
        )
        insert(
            conn,
            "breaker_transitions",
            run_id=run,
            ts=2.0,
            host=host,
            scope="host",
            old_state="open",
            new_state="half-open",
            reset_timeout_s=30.0,
        )


def _good(conn: sqlite3.Connection, out_dir: Path) -> None:
    summary.begin_run(conn, "good", GOOD_START, "cfg-good", "0.1.0")
    for i in range(18):
        dedupe = {0: "linked", 1: "referenced"}.get(i, "stored")
        size = {0: 1_500_000, 1: 500_000}.get(i, 64)
        _download(conn, out_dir, "good", i, True, 100.0 * (i + 1), dedupe, size)
    for i in range(18, 20):
        _download(conn, out_dir, "good", i, False, None)
    for _ in range(6):
        _http(conn, "good", "metadata", host="api.example", from_cache=1)
    _http(
        conn, "good", "metadata", host="api.example", revalidated=1, status=304, rate_delay_ms=10.0
    )
    for delay in (20.0, 30.0, 200.0):
        _http(conn, "good", "metadata", host="api.example", rate_delay_ms=delay)
    for i in range(56):
        _http(
            conn,
            "good",
            "artifact",
            host="pub.example",
            status=429 if i == 0 else 200,
            rate_delay_ms=1000.0,
        )  # artifact waits do not count towards the metadata SLI
    _opens(conn, "good", "pub.example", 3)
    insert(
        conn,
        "breaker_transitions",
        run_id="good",
        ts=3.0,
        host="pub.example",
        scope="host",
        old_state="half-open",
        new_state="closed",
        reset_timeout_s=30.0,
    )


def _bad(conn: sqlite3.Connection, out_dir: Path) -> None:
    summary.begin_run(conn, "bad", BAD_START, "cfg-bad", "0.1.0")
    for i, ttfp in enumerate((1000.0, 4000.0, 5000.0, 25000.0, 30000.0)):
        _download(conn, out_dir, "bad", i, True, ttfp)
    for i in range(5, 10):
        _download(conn, out_dir, "bad", i, False, None)
    conn.execute("UPDATE downloads SET sha256 = NULL WHERE run_id = 'bad' AND work_id = 'W0'")
    conn.execute(
        "UPDATE downloads SET quarantined = 1 WHERE run_id = 'bad' AND outcome <> 'success'"
    )
    (out_dir / "pdf" / "bad-W1.pdf").unlink()  # missing file
    (out_dir / "pdf" / "bad-W2.pdf").write_bytes(b"%PDF-truncated")  # size differs
    _http(conn, "bad", "metadata", host="api.example", from_cache=1)
    _http(conn, "bad", "metadata", host="api.example", rate_delay_ms=100.0)
    _http(conn, "bad", "metadata", host="api.example", rate_delay_ms=300.0)
    _http(conn, "bad", "metadata", host="api.example", rate_delay_ms=400.0, status=429)
    for i in range(7):
        _http(conn, "bad", "artifact", host="pub.example", status=429 if i < 2 else 200)
    _opens(conn, "bad", "pub.example", 7)


def _sparse(conn: sqlite3.Connection, out_dir: Path) -> None:
    summary.begin_run(conn, "sparse", SPARSE_START, "cfg-sparse", "0.1.0")
    for i in range(2):
        _download(conn, out_dir, "sparse", i, True, None)


def _live(conn: sqlite3.Connection, out_dir: Path) -> None:
    summary.begin_run(conn, "live", LIVE_START, "cfg-live", "0.1.0")
    _download(conn, out_dir, "live", 0, True, 1000.0)
    _download(conn, out_dir, "live", 1, True, 3000.0)
    _download(conn, out_dir, "live", 2, False, None)
    _http(conn, "live", "metadata", host="api.example", from_cache=1)
    _http(conn, "live", "metadata", host="api.example", from_cache=1)
    _http(conn, "live", "artifact", host="a.example", status=429, rate_delay_ms=50.0)
    _http(conn, "live", "artifact", host="a.example", status=200, rate_delay_ms=150.0)
    _http(conn, "live", "artifact", host="b.example", status=200, rate_delay_ms=5.0)
    _opens(conn, "live", "a.example", 2)


def build_store(out_dir: Path) -> Path:
    """Write the crafted store (and the files it points at) into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / store.STORE_FILE
    conn = sqlite3.connect(db)
    try:
        conn.executescript(store.schema_sql())
        _good(conn, out_dir)
        _bad(conn, out_dir)
        _sparse(conn, out_dir)
        _live(conn, out_dir)
        conn.commit()
        for run, end in (("good", GOOD_END), ("bad", BAD_END), ("sparse", SPARSE_END)):
            summary.finalize_run(conn, run, finished_at=end, spans_dropped=0, out_dir=out_dir)
    finally:
        conn.close()
    return db
