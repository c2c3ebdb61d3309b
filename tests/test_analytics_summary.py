"""run_summary computed from the tables: each figure against a hand-computed value."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics_fixtures import BAD, GOOD, LIVE, build_store, insert
from oafetch.telemetry import store, summary

FIGURES = [k for k in GOOD if k != "breaker_opens_per_hour"]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("crafted"))


@pytest.fixture
def ro(crafted: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(store.open_readonly(crafted)) as conn:
        yield conn


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 95, 7.0),
        ([1.0, 2.0], 50, 1.0),  # rank ceil(1.0) = 1
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([float(i) for i in range(1, 21)], 95, 19.0),  # ceil(19.0) = 19, not 20
        ([float(i) for i in range(1, 101)], 95, 95.0),
        ([float(i) for i in range(1, 11)], 95, 10.0),  # ceil(9.5) = 10
        ([float(i) for i in range(1, 11)], 100, 10.0),
        ([float(i) for i in range(1, 11)], 0, 1.0),
    ],
)
def test_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    """Nearest rank: the value at 1-based rank ceil(p/100 x n), always an observed value."""
    assert summary.nearest_rank(values, p) == expected


@pytest.mark.parametrize("n", [1, 2, 3, 10, 19, 20, 21, 101])
@pytest.mark.parametrize("p", [50, 95])
def test_sql_percentile_matches_nearest_rank(n: int, p: float) -> None:
    """The SQL percentile (read from the nearer end) equals the in-memory nearest rank."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (run_id TEXT, v REAL)")
    values = [float((i * 37) % 101) for i in range(n)]
    conn.executemany("INSERT INTO t VALUES ('r', ?)", [(v,) for v in values])
    conn.execute("INSERT INTO t VALUES ('r', NULL)")  # NULLs are left out
    got = summary.percentile(conn, "t", "v", "run_id = ?", ("r",), p)
    assert got == summary.nearest_rank(sorted(values), p)


@pytest.mark.parametrize("key", FIGURES)
def test_finalized_good_run_figures(ro: sqlite3.Connection, key: str) -> None:
    """finalize_run stored each figure of the passing run as computed by hand."""
    row = ro.execute(f"SELECT {key} FROM run_summary WHERE run_id = 'good'").fetchone()
    assert row[0] == pytest.approx(GOOD[key])


@pytest.mark.parametrize("key", FIGURES)
def test_finalized_bad_run_figures(ro: sqlite3.Connection, key: str) -> None:
    """finalize_run stored each figure of the failing run as computed by hand."""
    row = ro.execute(f"SELECT {key} FROM run_summary WHERE run_id = 'bad'").fetchone()
    assert row[0] == pytest.approx(BAD[key])


def test_live_run_computed_on_demand(ro: sqlite3.Connection, crafted: Path) -> None:
    """compute_run_summary reads a running run's tables; its row stays unfinished."""
    s = summary.compute_run_summary(ro, "live", out_dir=crafted.parent)
    for key in (
        "artifacts_total",
        "artifacts_success",
        "yield_pct",
        "ttfp_p50_ms",
        "ttfp_p95_ms",
        "cache_hit_pct",
    ):
        assert s[key] == pytest.approx(LIVE[key]), key
    assert s["finished_at"] is None
    assert s["rate_delay_p95_ms"] is None  # its metadata requests were all cache hits
    assert s["started_at"] == 40_000.0
    assert s["config_hash"] == "cfg-live"


def test_sparse_run_has_no_ratios(ro: sqlite3.Connection) -> None:
    """Nothing to measure is NULL, never 0: no requests, no ttfp."""
    row = ro.execute(
        "SELECT yield_pct, ttfp_p50_ms, ttfp_p95_ms, cache_hit_pct, rate_delay_p95_ms, "
        "http_429_ratio, breaker_open_events, dedupe_saved_mb, corruption_count "
        "FROM run_summary WHERE run_id = 'sparse'"
    ).fetchone()
    assert row == (100.0, None, None, None, None, None, 0, 0.0, 0)


def test_breakdowns(ro: sqlite3.Connection) -> None:
    """Per-host 429 ratio and breaker opens, per-role rate delay p95."""
    assert summary.http_429_ratio_by_host(ro, "live") == LIVE["http429_by_host"]
    assert summary.breaker_opens_by_host(ro, "live") == LIVE["opens_by_host"]
    assert summary.rate_delay_p95_by_role(ro, "live") == {"artifact": 150.0}
    assert summary.rate_delay_p95_by_role(ro, "good") == {"metadata": 200.0, "artifact": 1000.0}


def test_corruption_without_out_dir_checks_only_rows(ro: sqlite3.Connection) -> None:
    """Without the output directory only a missing sha256/final_path is corruption."""
    bad = summary.find_corrupt(ro, "bad", out_dir=None)
    assert [(b.work_id, b.problem) for b in bad] == [("W0", "success without sha256")]


def test_corruption_problems_are_named(ro: sqlite3.Connection, crafted: Path) -> None:
    """Each corrupt artifact says what is wrong with it."""
    bad = {b.work_id: b.problem for b in summary.find_corrupt(ro, "bad", out_dir=crafted.parent)}
    assert bad["W0"] == "success without sha256"
    assert bad["W1"].startswith("file missing: ")
    assert bad["W2"] == "size 14 bytes, recorded 64"


def test_verify_hashes_catches_same_size_damage(tmp_path: Path) -> None:
    """A file whose bytes changed but not its size is caught only when hashes are verified."""
    db = build_store(tmp_path)
    target = tmp_path / "pdf" / "good-W5.pdf"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with contextlib.closing(store.open_readonly(db)) as conn:
        assert summary.find_corrupt(conn, "good", out_dir=tmp_path) == []
        damaged = summary.find_corrupt(conn, "good", out_dir=tmp_path, verify_hashes=True)
    assert [(d.work_id, d.problem) for d in damaged] == [
        ("W5", "sha256 differs from the recorded one")
    ]


def _fresh(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "t.sqlite")
    conn.executescript(store.schema_sql())
    return conn


def test_finalize_inserts_missing_row(tmp_path: Path) -> None:
    """finalize_run inserts the row when begin_run never ran, and commits."""
    conn = _fresh(tmp_path)
    insert(conn, "downloads", run_id="x", ts=1.0, outcome="error", reason="not-found")
    result = summary.finalize_run(conn, "x", finished_at=9.0, spans_dropped=4, out_dir=None)
    conn.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "t.sqlite")) as check:
        row = check.execute(
            "SELECT finished_at, spans_dropped, artifacts_total, yield_pct FROM run_summary"
        ).fetchone()
    assert row == (9.0, 4, 1, 0.0)
    assert result["spans_dropped"] == 4 and result["run_id"] == "x"


def test_begin_run_twice_keeps_first_start(tmp_path: Path) -> None:
    """Beginning a finished run again (resume) marks it running and keeps its first start."""
    conn = _fresh(tmp_path)
    summary.begin_run(conn, "r", 10.0, "h1", "0.1.0")
    summary.finalize_run(conn, "r", finished_at=20.0, spans_dropped=0, out_dir=None)
    summary.begin_run(conn, "r", 30.0, "h2", "0.2.0")
    row = conn.execute(
        "SELECT started_at, finished_at, config_hash, oafetch_version FROM run_summary"
    ).fetchone()
    conn.close()
    assert row == (10.0, None, "h2", "0.2.0")


def test_finalize_updates_only_its_run(tmp_path: Path) -> None:
    """Finalising one run leaves the other runs' rows alone."""
    conn = _fresh(tmp_path)
    summary.begin_run(conn, "a", 1.0, "h", "v")
    summary.begin_run(conn, "b", 2.0, "h", "v")
    summary.finalize_run(conn, "a", finished_at=5.0, spans_dropped=0, out_dir=None)
    rows = conn.execute("SELECT run_id, finished_at FROM run_summary ORDER BY run_id").fetchall()
    conn.close()
    assert rows == [("a", 5.0), ("b", None)]
