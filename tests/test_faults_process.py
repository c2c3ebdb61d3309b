"""Process faults: ``kill -9`` at random points then ``--resume``, a full disk mid-write, a
corrupted manifest, and a dead or hung OTLP collector.

The kill test runs the real CLI in a subprocess with telemetry on and checks, after every kill
and at the end: nothing half-written at a final path, the manifest parseable (at most the torn
last line of a killed run), every work stored exactly once, and the telemetry store reconciling
with the manifest. Set ``FAULTS_SEED`` to replay a particular sequence of kill points.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from faults import (
    RawServer,
    dead_port,
    never_answer,
    offline,
    quick_loopback,
    raw_servers,
    stored_files,
)
from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Outcome, Reason
from oafetch.manifest import read_manifest
from oafetch.storage import Storage


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    yield from raw_servers()


def _serve(server: Loopback, n: int, delay: float = 0.0) -> dict[str, bytes]:
    bodies: dict[str, bytes] = {}
    for i in range(n):
        body = pdf_bytes(20_000 + 97 * i, seed=1000 + i)
        bodies[f"/w{i}.pdf"] = body

        def route(h: Handler, body: bytes = body) -> None:
            if delay:
                time.sleep(delay)
            h.reply(200, body, "application/pdf")

        server.routes[f"/w{i}.pdf"] = route
    return bodies


def _manifest_rows(out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rows, errors = [], []
    for _, row, error in read_manifest(out / "manifest.jsonl"):
        if error:
            errors.append(error)
        else:
            assert row is not None
            rows.append(row)
    return rows, errors


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# -- kill -9 at random points, then --resume ---------------------------------------------------


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_stores_every_work_exactly_once(
    server: Loopback, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FAULTS_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    n = 60
    bodies = _serve(server, n, delay=0.06)
    known = {hashlib.sha256(b).hexdigest() for b in bodies.values()}
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    config = tmp_path / "oafetch.toml"
    config.write_text(
        "[telemetry]\nenabled = true\nsqlite = true\njsonl = true\n"
        "[politeness]\nenabled = false\n[cache]\nenabled = false\n"
        "[download]\nfsync = false\nmin_pdf_bytes = 100\n"
        "[resolvers.wayback]\nenabled = false\n"
    )
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "oafetch.cli",
        "run",
        str(ids),
        "--out",
        str(out),
        "--config",
        str(config),
        "--workers",
        "2",
        "--quiet",
        "--resume",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OAFETCH_"))}
    manifest = out / "manifest.jsonl"
    kills: list[str] = []
    started = time.monotonic()
    while len(kills) < 20:
        done = len({r["work_id"] for r in _manifest_rows(out)[0] if r["outcome"] == "success"})
        assert n - done > 3, f"seed {seed}: the runs finished before twenty kills landed"
        before, served = _line_count(manifest), len(server.log)
        # The kill point: once the server has seen 1..remaining/3 requests of this run, plus a
        # random delay — so the kill lands mid-transfer, mid-write, or between works.
        more = rng.randint(1, max(1, (n - done) // 10))
        jitter = rng.uniform(0.0, 0.15)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 20
        while len(server.log) < served + more and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        time.sleep(jitter)
        assert proc.poll() is None, f"seed {seed}: the run ended before its kill point"
        proc.kill()  # SIGKILL
        proc.wait(10)
        kills.append(
            f"request {more} +{jitter * 1000:.0f} ms: {_line_count(manifest) - before} rows"
        )
        # Nothing half-written is visible at a final path, ever.
        for path in (out / "pdf").glob("*.pdf"):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest in known, f"seed {seed}: partial file {path.name} at a final path"
        rows, errors = _manifest_rows(out)
        assert len(errors) <= len(kills), f"seed {seed}: only torn last lines: {errors}"
    final = subprocess.run(args, env=env, timeout=60, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    elapsed = time.monotonic() - started

    rows, errors = _manifest_rows(out)
    assert len(errors) <= len(kills)
    successes = Counter(r["work_id"] for r in rows if r["outcome"] == "success")
    assert len(successes) == n and set(successes.values()) == {1}, (
        f"seed {seed}: each work stored exactly once: {successes}"
    )
    files = sorted((out / "pdf").glob("*.pdf"))
    assert sorted(p.read_bytes() for p in files) == sorted(bodies.values())
    assert not list(out.rglob("*.part-*")), "no temp file is left"

    # The telemetry store reconciles with the manifest.
    final_run = rows[-1]["run_id"]
    with sqlite3.connect(out / "telemetry.sqlite") as db:
        telemetry_rows = list(
            db.execute(
                # works skipped as already stored are outcomes of a run too (reason resumed),
                # but the manifest holds the rows of the runs that stored them
                "SELECT run_id, work_id FROM downloads WHERE outcome = 'success' "
                "AND reason != 'resumed'"
            )
        )
        summaries = {r[0] for r in db.execute("SELECT run_id FROM run_summary")}
        recovered = db.execute(
            "SELECT count(*) FROM downloads WHERE dedupe_action = 'recovered'"
        ).fetchone()[0]
    by_run: dict[str, set[str]] = {}
    for run_id, work_id in telemetry_rows:
        by_run.setdefault(run_id, set()).add(work_id)
    manifest_by_run: dict[str, set[str]] = {}
    for row in rows:
        if row["outcome"] == "success":
            manifest_by_run.setdefault(row["run_id"], set()).add(row["work_id"])
    assert by_run.get(final_run, set()) == manifest_by_run.get(final_run, set()), (
        "the completing run: one downloads row per manifest success row"
    )
    assert final_run in summaries
    killed_runs = set(manifest_by_run) - {final_run}
    lost = 0
    for run_id in killed_runs:
        extra = by_run.get(run_id, set()) - manifest_by_run[run_id]
        assert len(extra) <= 2, "a killed run may have recorded only its in-flight works early"
        lost += len(manifest_by_run[run_id] - by_run.get(run_id, set()))
    assert lost == 0, (
        f"seed {seed}: every manifest success row has its downloads row after the resume"
    )
    assert set().union(*by_run.values()) <= set(successes)
    print(
        f"kill -9 seed={seed}: {len(kills)} kills ({'; '.join(kills)}), "
        f"{len(manifest_by_run)} runs with stores, {elapsed:.1f}s, downloads rows missing after "
        f"the resume: {lost} (restored from the manifest: {recovered})"
    )


# -- a full disk -----------------------------------------------------------------------------------


class _FullDisk:
    """A temp file handle that fails like a full disk after ``room`` bytes (or on flush)."""

    def __init__(self, fh: IO[bytes], room: int, *, at_flush: bool = False) -> None:
        self._fh = fh
        self._room = room
        self._at_flush = at_flush

    def write(self, data: bytes) -> int:
        if not self._at_flush and len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        if self._at_flush:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._fh.flush()

    def fileno(self) -> int:
        return self._fh.fileno()

    def close(self) -> None:
        self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed


@pytest.mark.parametrize("at_flush", [False, True], ids=["in-write", "at-flush"])
def test_a_full_disk_mid_write_stops_the_batch_and_a_resume_stores_the_rest(
    server: Loopback,
    make_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    at_flush: bool,
) -> None:
    """Carrying on would fail every later work the same way: the first disk error stops the
    batch, recorded as ``disk-error``; with space again, a resume stores every work."""
    _serve(server, 4)
    real_open = Storage.open_temp

    def open_temp(self: Storage, work_id: str) -> tuple[Path, Any]:
        temp, fh = real_open(self, work_id)
        if "/w1.pdf" in work_id:
            return temp, _FullDisk(fh, room=5000, at_flush=at_flush)
        return temp, fh

    urls = [server.url(f"/w{i}.pdf") for i in range(4)]
    with monkeypatch.context() as patch:
        patch.setattr(Storage, "open_temp", open_temp)
        with Downloader(make_config(**offline({"workers": 1})), resume=False) as dl:
            results = {r.work_id: r for r in dl.run(urls)}
            stopped = dl.disk_error
    full = next(r for w, r in results.items() if "/w1.pdf" in w)
    assert full.outcome is Outcome.ERROR and full.reason is Reason.DISK_ERROR
    assert "disk full" in full.message
    assert stopped is not None and "disk full" in stopped, "the batch stopped at the error"
    assert not any("/w3.pdf" in w and r.outcome is Outcome.SUCCESS for w, r in results.items())
    assert not list((tmp_path / "out").rglob("*.part-*")), "the partial file was removed"
    with Downloader(make_config(**offline({"workers": 2})), resume=True) as dl:
        again = list(dl.run(urls))
    assert all(r.outcome is Outcome.SUCCESS for r in again)
    assert len(stored_files(tmp_path / "out")) == 4


# -- a corrupted manifest --------------------------------------------------------------------------


def test_corrupted_manifest_lines_are_reported_and_the_run_resumes(
    server: Loopback, make_config: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _serve(server, 3)
    urls = [server.url(f"/w{i}.pdf") for i in range(3)]
    config = make_config(**offline({}))
    with Downloader(config, resume=False) as dl:
        first = dl.fetch(urls[0])
    manifest = tmp_path / "out" / "manifest.jsonl"
    w1 = f"url:{urls[1]}"
    garbage = [
        b'{"work_id": "torn',  # a torn write
        b"\x00\x00\x00\x00",  # zeros a crash can leave
        b"[1, 2, 3]",
        b'{"no_work_id": true}',
        b'{"work_id": ["a", "list"], "outcome": "success"}',
        b'{"work_id": 42}',
        json.dumps(
            {"work_id": w1, "outcome": "success", "path": "../../../etc/passwd", "sha256": "0" * 64}
        ).encode(),
        json.dumps({"work_id": w1, "outcome": "success", "path": 7, "bytes": "many"}).encode(),
        b"\xff\xfe not utf-8 \xc3\x28",
    ]
    with manifest.open("ab") as fh:
        fh.write(b"\n".join(garbage))  # no final newline: the last line is torn too
    caplog.set_level(logging.WARNING, logger="oafetch")
    with Downloader(config, resume=True) as dl:
        results = {r.work_id: r for r in dl.run(urls)}
    reported = [r.getMessage() for r in caplog.records if "manifest" in r.getMessage()]
    assert len(reported) == len(garbage), reported
    assert any("leaves the output directory" in m for m in reported)
    assert all("manifest.jsonl:" in m for m in reported), "each names its line"
    assert results[first.work_id].reason is Reason.RESUMED
    assert results[w1].outcome is Outcome.SUCCESS and results[w1].reason is Reason.OK
    assert all(r.outcome is Outcome.SUCCESS for r in results.values())
    assert Path("/etc/passwd").exists()  # untouched, obviously; nothing linked to it
    assert not any((tmp_path / "out" / "pdf").glob("passwd*"))


# -- the OTLP collector down or hung ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("collector", ["dead", "hung"])
def test_a_dead_or_hung_collector_leaves_the_run_unaffected(
    server: Loopback, make_config: Any, tmp_path: Path, raw: Any, collector: str
) -> None:
    _serve(server, 10)
    dead = f"http://127.0.0.1:{dead_port()}"
    endpoint = dead if collector == "dead" else raw(never_answer).base
    config = make_config(
        **offline(
            {
                "telemetry": {"enabled": True, "otlp_endpoint": endpoint, "otlp_timeout_s": 1.0},
                "workers": 4,
            }
        )
    )
    started = time.monotonic()
    with Downloader(config, resume=False) as dl:
        results = list(dl.run([server.url(f"/w{i}.pdf") for i in range(10)]))
        run_s = time.monotonic() - started
    total_s = time.monotonic() - started
    assert all(r.outcome is Outcome.SUCCESS for r in results)
    # Generous bounds (true on a machine 10x slower): what they catch is waiting for the
    # collector — the exporter's default timeout is 60 s, and a download that waited for an
    # export (1 s here) ten times over would show too.
    assert run_s < 20, f"downloads were slowed by the collector ({run_s:.1f}s)"
    assert total_s < 30, f"exit was delayed by the collector ({total_s:.1f}s)"
    with sqlite3.connect(tmp_path / "out" / "telemetry.sqlite") as db:
        count = db.execute("SELECT count(*) FROM downloads WHERE outcome='success'").fetchone()[0]
    assert count == 10, "the local store is complete"
