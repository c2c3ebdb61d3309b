"""``telemetry query`` (DuckDB over the store) and ``telemetry export`` (Parquet, ZSTD)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics_fixtures import build_store
from oafetch.telemetry import parquet, query, store
from oafetch.telemetry.analytics_cli import main

TABLES = [
    "breaker_transitions",
    "downloads",
    "fallback_attempts",
    "http_events",
    "rate_events",
    "run_summary",
]
SQL = "SELECT outcome, count(*) AS n FROM downloads WHERE run_id = 'good' GROUP BY 1 ORDER BY 1"


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("qe"))


def _sqlite_count(db: Path, table: str, run_id: str | None = None) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        if run_id is None:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        sql = f"SELECT COUNT(*) FROM {table} WHERE run_id = ?"
        return int(conn.execute(sql, (run_id,)).fetchone()[0])


# -- query --------------------------------------------------------------------------------------


def test_query_csv(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format csv: a header and one line per row."""
    assert main(["query", "--db", str(crafted), SQL, "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["outcome", "n"], ["error", "2"], ["success", "18"]]


def test_query_json(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json: an array of objects with JSON numbers."""
    assert main(["query", "--db", str(crafted), SQL, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"outcome": "error", "n": 2},
        {"outcome": "success", "n": 18},
    ]


def test_query_table(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default table names the columns and counts the rows."""
    assert main(["query", "--db", str(crafted), SQL]) == 0
    out = capsys.readouterr().out
    assert "outcome" in out and "success" in out and "18" in out and "2 rows" in out


def test_query_table_truncates(crafted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-rows caps the table and says how many rows were left out."""
    sql = "SELECT work_id FROM downloads"
    assert main(["query", "--db", str(crafted), sql, "--max-rows", "3"]) == 0
    total = _sqlite_count(crafted, "downloads")
    assert f"{total} rows ({total - 3} not shown" in capsys.readouterr().out


def test_query_joins_and_types(crafted: Path) -> None:
    """Joins across tables work and DuckDB types (timestamps with zone, decimals) convert."""
    result = query.run_query(
        crafted,
        "SELECT s.run_id, to_timestamp(s.started_at) AS started, 1.5 AS d, count(h.ts) AS n "
        "FROM run_summary s LEFT JOIN http_events h USING (run_id) "
        "WHERE s.run_id = 'good' GROUP BY ALL",
    )
    assert result.columns == ["run_id", "started", "d", "n"]
    ((run_id, started, d, n),) = result.rows
    assert (run_id, n) == ("good", 66)
    assert query.cell_text(started).startswith("1970-01-01T00:16:40")
    assert query.cell_text(d) == "1.5"


def test_query_lists_all_tables(crafted: Path) -> None:
    """SHOW TABLES sees the whole schema even though only referenced tables are loaded."""
    result = query.run_query(crafted, "SHOW TABLES")
    assert sorted(r[0] for r in result.rows) == TABLES


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM downloads",
        "INSERT INTO downloads (run_id, ts) VALUES ('x', 1)",
        "UPDATE run_summary SET yield_pct = 100",
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE downloads",
        "COPY downloads TO 'out.csv'",
        "ATTACH 'other.db'",
        "SET threads = 1",
    ],
)
def test_query_refuses_writes(crafted: Path, capsys: pytest.CaptureFixture[str], sql: str) -> None:
    """Anything but a read is refused (exit 2), and the store is untouched."""
    before = crafted.read_bytes()
    assert main(["query", "--db", str(crafted), sql]) == 2
    err = capsys.readouterr().err
    assert "telemetry query is read-only" in err and "refused a" in err
    assert crafted.read_bytes() == before


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC 1", "SQL does not parse"),
        ("SELECT 1; SELECT 2", "give exactly one SQL statement (got 2)"),
        ("SELECT nope FROM downloads", "query failed"),
    ],
)
def test_query_bad_sql(
    crafted: Path, capsys: pytest.CaptureFixture[str], sql: str, message: str
) -> None:
    """Bad SQL is a usage error with DuckDB's explanation."""
    assert main(["query", "--db", str(crafted), sql]) == 2
    assert message in capsys.readouterr().err


def test_referenced_tables() -> None:
    """Only tables named in the SQL are loaded (whole words, any case)."""
    names = ["downloads", "http_events", "run_summary"]
    sql = "select * from DOWNLOADS d join http_events_x using (run_id)"
    assert query.referenced_tables(sql, names) == ["downloads"]


def test_query_opens_store_read_only(crafted: Path, tmp_path: Path) -> None:
    """The store is opened with mode=ro: a read-only copy on a read-only path still works."""
    ro_dir = tmp_path / "ro"
    ro_dir.mkdir()
    copy = ro_dir / "telemetry.sqlite"
    copy.write_bytes(crafted.read_bytes())
    copy.chmod(0o444)
    ro_dir.chmod(0o555)
    try:
        assert query.run_query(copy, "SELECT count(*) FROM downloads").rows == [(35,)]
    finally:
        ro_dir.chmod(0o755)


# -- export -------------------------------------------------------------------------------------


def test_export_row_counts_schema_and_codec(crafted: Path, tmp_path: Path) -> None:
    """One ZSTD Parquet file per table, row counts equal SQLite's, declared types kept."""
    assert main(["export", "--db", str(crafted), "--out", str(tmp_path / "pq")]) == 0
    with contextlib.closing(store.open_readonly(crafted)) as conn:
        layout = store.tables(conn)
    assert sorted(layout) == TABLES
    for table, columns in layout.items():
        path = tmp_path / "pq" / f"{table}.parquet"
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == _sqlite_count(crafted, table), table
        codecs = {
            meta.row_group(g).column(c).compression
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        }
        assert codecs <= {"ZSTD"}, (table, codecs)
        schema = pq.read_schema(path)
        assert schema.names == [c.name for c in columns]
        expected = {"TEXT": pa.string(), "INTEGER": pa.int64(), "REAL": pa.float64()}
        for col in columns:
            assert schema.field(col.name).type == expected[col.decltype], (table, col.name)
            assert schema.field(col.name).nullable == (not col.notnull)


def test_export_reads_back_with_duckdb(crafted: Path, tmp_path: Path) -> None:
    """DuckDB reads the export back with the same counts and figures."""
    parquet.export_store(crafted, tmp_path)
    with contextlib.closing(duckdb.connect()) as duck:
        n = duck.execute(f"SELECT count(*) FROM '{tmp_path}/http_events.parquet'").fetchone()
        y = duck.execute(
            f"SELECT yield_pct FROM '{tmp_path}/run_summary.parquet' WHERE run_id = 'good'"
        ).fetchone()
    assert n == (_sqlite_count(crafted, "http_events"),)
    assert y == (90.0,)


def test_export_one_run(crafted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--run writes DIR/<table>/run_id=<id>.parquet with only that run's rows."""
    for run in ("good", "bad"):
        assert main(["export", "--db", str(crafted), "--out", str(tmp_path), "--run", run]) == 0
    assert "http_events" in capsys.readouterr().out
    for table in TABLES:
        for run in ("good", "bad"):
            path = tmp_path / table / f"run_id={run}.parquet"
            assert pq.ParquetFile(path).metadata.num_rows == _sqlite_count(crafted, table, run)
    with contextlib.closing(duckdb.connect()) as duck:
        runs = duck.execute(
            f"SELECT DISTINCT run_id FROM '{tmp_path}/downloads/*.parquet' ORDER BY 1"
        ).fetchall()
    assert runs == [("bad",), ("good",)]


def test_export_run_id_is_encoded(tmp_path: Path) -> None:
    """A run id with path characters cannot escape the table directory."""
    assert parquet.export_path(tmp_path, "downloads", "../x/y") == (
        tmp_path / "downloads" / "run_id=..%2Fx%2Fy.parquet"
    )


def test_export_unknown_run(
    crafted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exporting a run the store does not know exits 2 and lists the runs."""
    assert main(["export", "--db", str(crafted), "--out", str(tmp_path), "--run", "nope"]) == 2
    assert "unknown run 'nope'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_export_empty_tables_keep_schema(tmp_path: Path) -> None:
    """An empty table still gets a file with its full schema and zero rows."""
    db = tmp_path / "telemetry.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(store.schema_sql())
    files = parquet.export_store(db, tmp_path / "out")
    assert {f.table: f.rows for f in files} == dict.fromkeys(TABLES, 0)
    assert "trace_id" in pq.read_schema(tmp_path / "out" / "http_events.parquet").names


def test_readers_agree(crafted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ADBC and sqlite3 readers give the same Arrow table (NULL-led columns included)."""
    if parquet.reader_name() != "adbc":
        pytest.skip("adbc-driver-sqlite is not installed: only the sqlite3 reader exists")
    with contextlib.closing(store.open_readonly(crafted)) as conn:
        layout = store.tables(conn)
    for table, columns in layout.items():
        fast = parquet.read_table(crafted, table, columns)
        with monkeypatch.context() as m:
            m.setattr(parquet, "_ADBC", None)
            slow = parquet.read_table(crafted, table, columns)
        assert fast.equals(slow), table


def test_value_of_wrong_type_is_an_error(tmp_path: Path) -> None:
    """A value that does not fit its declared type is reported, not coerced."""
    db = tmp_path / "telemetry.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(store.schema_sql())
        conn.execute("INSERT INTO http_events (run_id, ts, status) VALUES ('r', 1, 'oops')")
        conn.commit()
    with pytest.raises(store.StoreError, match="cannot read table http_events"):
        parquet.export_store(db, tmp_path / "out")


def test_parallel_readers_wait_for_locks(tmp_path: Path) -> None:
    """Tables read side by side on a fresh WAL store never fail with "database is locked"."""
    for i in range(10):
        db = build_store(tmp_path / f"s{i}")
        files = parquet.export_store(db, tmp_path / f"o{i}", run_id="good")
        assert len(files) == len(TABLES)
