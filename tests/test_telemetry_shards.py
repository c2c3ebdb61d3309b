"""An engine run's telemetry lands in the output directory's one ``telemetry.sqlite`` as its
shards are published, beside the rows of earlier runs — which neither the run nor a later
``oafetch telemetry merge`` may drop."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopback import Loopback, pdf_bytes
from oafetch import Config, Downloader
from oafetch.engines.process_engine import ProcessEngine
from oafetch.telemetry.analytics_cli import main as telemetry_main
from oafetch.telemetry.merge import SHARDS_DIR, ShardAppender, merge_stores


@pytest.fixture
def urls(server: Loopback) -> Iterator[list[str]]:
    for i in range(30):
        body = pdf_bytes(500 + i, seed=i)
        server.routes[f"/w{i}.pdf"] = lambda h, body=body: h.reply(200, body, "application/pdf")
    yield [server.url(f"/w{i}.pdf") for i in range(30)]


def _config(out: Path) -> Config:
    return Config(
        out_dir=out,
        mailto="tester@oafetch.test",
        politeness={"enabled": False},
        cache={"enabled": False},
        download={"fsync": False, "min_pdf_bytes": 100},
    )


def _query(out: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        return list(conn.execute(sql))


def _downloads_by_run(out: Path) -> dict[str, int]:
    return dict(_query(out, "SELECT run_id, count(*) FROM downloads GROUP BY run_id"))


def test_an_engine_run_keeps_the_rows_of_an_earlier_one_process_run(
    urls: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with Downloader(_config(out)) as dl:
        list(dl.run(urls[:10]))
    (local_run,) = _downloads_by_run(out)
    with ProcessEngine(_config(out), processes=2, shard_size=5) as engine:
        list(engine.run(urls[10:]))
        engine_run = engine.run_id
    assert _downloads_by_run(out) == {local_run: 10, engine_run: 20}
    summaries = dict(_query(out, "SELECT run_id, artifacts_total FROM run_summary"))
    assert summaries == {local_run: 10, engine_run: 20}
    (finished,) = _query(out, f"SELECT finished_at FROM run_summary WHERE run_id = '{engine_run}'")
    assert finished[0] is not None

    # merging again (after a killed driver, say) rebuilds the same store: nothing dropped
    before = {
        table: _query(out, f"SELECT count(*) FROM {table}")[0][0]
        for table in ("downloads", "fallback_attempts", "http_events", "run_summary")
    }
    assert telemetry_main(["merge", str(out)]) == 0
    after = {table: _query(out, f"SELECT count(*) FROM {table}")[0][0] for table in before}
    assert after == before
    assert _downloads_by_run(out) == {local_run: 10, engine_run: 20}


def test_the_store_fills_while_the_engine_runs(urls: list[str], tmp_path: Path) -> None:
    """As with one process, ``telemetry.sqlite`` holds each published shard's rows mid-run,
    the run shown as running (no ``finished_at``) until it ends."""
    out = tmp_path / "out"
    with ProcessEngine(_config(out), processes=2, shard_size=5) as engine:
        results = engine.run(urls)
        seen = [next(results)]
        mid_run = _downloads_by_run(out)
        running = _query(out, "SELECT finished_at FROM run_summary")
        seen += list(results)
    assert 5 <= sum(mid_run.values()) < len(urls)
    assert running == [(None,)]
    assert sum(_downloads_by_run(out).values()) == len(urls) == len(seen)


def test_appending_a_shard_is_all_or_nothing(urls: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with ProcessEngine(_config(out), processes=1, shard_size=10) as engine:
        list(engine.run(urls))
    shards = sorted((out / SHARDS_DIR).glob("*.sqlite"))
    assert len(shards) == 3
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_bytes(b"not a database at all" * 100)
    target = tmp_path / "merged.sqlite"
    appender = ShardAppender(target)
    appender.append(shards[0])
    with pytest.raises(Exception, match="bogus"):
        appender.append(bogus)
    appender.append(shards[1])
    appender.finish()
    with sqlite3.connect(target) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM downloads").fetchone()
    assert rows == 20
    assert merge_stores(shards, target) > 0  # a rebuild: the same run, all three shards
    with sqlite3.connect(target) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM downloads").fetchone()
    assert rows == 30
