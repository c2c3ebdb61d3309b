"""A batch on several local processes (``--processes N``): the outputs of a one-process run,
every host's rate held by the processes together (server-side), a worker killed mid-run losing
and duplicating nothing, and a resumed run recording its resumed works."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oafetch import Downloader
from oafetch.demo import demo_config
from oafetch.engines.process_engine import ProcessEngine
from oafetch.engines.shards import STAGING_DIR
from oafetch.sandbox import Corpus, Sandbox
from oafetch.works import parse_work

RATES = {
    "unpaywall": "40/s",
    "crossref": "40/s",
    "openalex": "40/s",
    "arxiv_api": "5/s",
    "arxiv": "5/s",
    "*": "20/s",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(corpus=Corpus(seed=7), rates=RATES, arxiv_crawl_delay=0.2) as sandbox:
        yield sandbox


def _config(sandbox: Sandbox, out: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {"workers": 4, "cache": {"enabled": False}}
    settings.update(overrides)
    return demo_config(sandbox, out, **settings)


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _stored(out: Path) -> dict[str, str]:
    return {r["work_id"]: r["sha256"] for r in _rows(out) if r["ok"]}


def _throttled(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.requests() if e.get("throttled")]


def _no_leftovers(out: Path) -> None:
    assert not [p for p in out.rglob("*") if ".part-" in p.name]
    assert not (out / STAGING_DIR).exists()


def test_two_processes_store_what_one_process_stores(sandbox: Sandbox, tmp_path: Path) -> None:
    identifiers = [w.identifier for w in sandbox.works[:60]]
    sandbox.reset_state()
    with Downloader(_config(sandbox, tmp_path / "one"), resume=False) as dl:
        list(dl.run(identifiers))
    sandbox.clear_log()
    sandbox.reset_state()
    out = tmp_path / "two"
    with ProcessEngine(
        _config(sandbox, out, telemetry={"enabled": True}), processes=2, shard_size=10
    ) as engine:
        results = list(engine.run(identifiers))
        nodes = engine.collector.nodes
    assert len(results) == len(identifiers)
    assert len(nodes) == 2, nodes  # both processes ran shards
    assert _stored(out) == _stored(tmp_path / "one")  # the same works, byte-identical
    assert Counter(r["work_id"] for r in _rows(out)) == Counter(
        parse_work(i).work_id for i in identifiers
    )
    for identifier in identifiers:
        expected = sandbox.expected(identifier)
        if expected.expected_obtainable:
            assert _stored(out)[parse_work(identifier).work_id] == expected.expected_sha256
    assert not _throttled(sandbox)  # every host's rate held by both processes together
    _no_leftovers(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "processes" and summary["works"] == len(identifiers)
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        (network,) = conn.execute(
            "SELECT COUNT(*) FROM http_events WHERE from_cache = 0"
        ).fetchone()
        (downloads,) = conn.execute("SELECT COUNT(*) FROM downloads").fetchone()
    assert network == len(sandbox.requests())
    assert downloads == len(identifiers)


def test_a_killed_worker_loses_and_duplicates_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    identifiers = [w.identifier for w in sandbox.works[60:120]]
    sandbox.reset_state()
    out = tmp_path / "out"
    engine = ProcessEngine(_config(sandbox, out), processes=2, shard_size=5)
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            pool = engine._pool
            pids = list(getattr(pool, "_processes", {}) or {}) if pool else []
            if pids and engine.collector.shards_published >= 1:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker)
    with engine:
        killer.start()
        results = list(engine.run(identifiers))
    killer.join()
    assert killed, "no worker was killed (the batch ended first)"
    assert len(results) == len(identifiers)
    counts = Counter(r["work_id"] for r in _rows(out))
    assert sorted(counts) == sorted(parse_work(i).work_id for i in identifiers)
    assert max(counts.values()) == 1  # none duplicated
    for identifier in identifiers:
        expected = sandbox.expected(identifier)
        row = next(r for r in _rows(out) if r["work_id"] == parse_work(identifier).work_id)
        assert row["ok"] == expected.expected_obtainable, (identifier, row["reason"])
    _no_leftovers(out)


def test_cli_processes_resumes_and_records_the_resumed(sandbox: Sandbox, tmp_path: Path) -> None:
    from oafetch.batch import run_batch
    from oafetch.cli import build_parser

    identifiers = [w.identifier for w in sandbox.works[120:150]]
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(identifiers) + "\n")
    out = tmp_path / "out"
    argv = ["run", str(source), "--processes", "2", "--shard-size", "7", "--quiet"]
    sandbox.reset_state()

    def config() -> Any:
        return _config(sandbox, out, processes=2, telemetry={"enabled": True})

    assert run_batch(build_parser().parse_args(argv), config()) == 0
    first = _stored(out)
    assert run_batch(build_parser().parse_args(argv), config()) == 0
    assert _stored(out) == first
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reasons"].get("resumed") == len(first)
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        (resumed,) = conn.execute(
            "SELECT COUNT(*) FROM downloads WHERE run_id = ? AND reason = 'resumed'",
            (summary["run_id"],),
        ).fetchone()
    assert resumed == len(first)


def test_processes_must_be_positive(sandbox: Sandbox, tmp_path: Path) -> None:
    from oafetch.errors import ConfigError

    with pytest.raises(ConfigError, match="processes"):
        ProcessEngine(_config(sandbox, tmp_path / "out"), processes=0)


def test_a_metrics_port_does_not_stop_the_shards(sandbox: Sandbox, tmp_path: Path) -> None:
    """Many shards run at once: none binds the live /metrics port (it would collide)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    identifiers = [w.identifier for w in sandbox.works[150:166]]
    telemetry = {"enabled": True, "metrics_port": port, "metrics_host": "127.0.0.1"}
    config = _config(sandbox, tmp_path / "out", telemetry=telemetry)
    with ProcessEngine(config, processes=2, shard_size=4) as engine:
        results = list(engine.run(identifiers))
    assert len(results) == len(identifiers)
    assert len(_rows(tmp_path / "out")) == len(identifiers)


def test_each_host_is_asked_for_robots_txt_once_per_run_not_per_shard(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    identifiers = [w.identifier for w in sandbox.works[200:260]]
    sandbox.clear_log()
    sandbox.reset_state()
    with ProcessEngine(_config(sandbox, tmp_path / "out"), processes=2, shard_size=5) as engine:
        list(engine.run(identifiers))
    robots = Counter(e["service"] for e in sandbox.requests() if e["path"].endswith("/robots.txt"))
    assert robots, "the batch fetched no robots.txt"
    # 12 shards ran; two at once may both miss an answer neither has yet, never more
    assert max(robots.values()) <= 2, robots


def test_quarantined_files_reach_the_output_directory(sandbox: Sandbox, tmp_path: Path) -> None:
    """A shard's quarantined PDFs (not the work they were named for) and their evidence are
    where the manifest says, as in a one-process run."""
    from oafetch.sandbox.behaviours import Behaviour

    wrong = [w.identifier for w in sandbox.works if w.behaviour is Behaviour.WRONG_PDF][:6]
    out = tmp_path / "out"
    sandbox.reset_state()
    with ProcessEngine(_config(sandbox, out), processes=2, shard_size=3) as engine:
        list(engine.run(wrong))
    named = [q for r in _rows(out) for q in r.get("quarantined") or ()]
    assert named, "no work quarantined a file"
    for relpath in named:
        assert (out / relpath).is_file(), relpath
        evidence = json.loads((out / relpath).with_suffix(".json").read_text())
        assert evidence
    _no_leftovers(out)


def test_closing_the_engine_ends_its_limiter_server(tmp_path: Path) -> None:
    """The driver's limiter server stops with the engine: its accept loop ends (it used to stay
    blocked in ``accept``, and every run's close waited out a 5 s join for it)."""
    from oafetch import Config

    engine = ProcessEngine(
        Config(out_dir=tmp_path / "out", mailto="tester@oafetch.test"), processes=1
    )
    thread = engine._server_thread
    assert thread is not None and thread.is_alive()
    engine.close()
    assert not thread.is_alive()
