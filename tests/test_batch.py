"""Batch runs: resume after kill -9, Ctrl-C, the output-dir lock, bad input lines, slow hosts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Outcome, Reason
from oafetch.errors import OutputDirLocked

N = 30


def _serve_pdfs(server: Loopback, n: int = N, delay: float = 0.0) -> dict[str, bytes]:
    bodies = {}
    for i in range(n):
        body = pdf_bytes(3000 + i, seed=i)
        bodies[f"/w{i}.pdf"] = body

        def route(h: Handler, body: bytes = body) -> None:
            if delay:
                time.sleep(delay)
            h.reply(200, body, "application/pdf")

        server.routes[f"/w{i}.pdf"] = route
    return bodies


def _write_config(path: Path) -> Path:
    path.write_text(
        "[telemetry]\nenabled = false\n[politeness]\nenabled = false\n"
        "[download]\nfsync = false\nmin_pdf_bytes = 100\n"
    )
    return path


def _oafetch(*args: str) -> list[str]:
    return [sys.executable, "-m", "oafetch.cli", *args]


def _manifest(out: Path) -> list[dict[str, Any]]:
    rows = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _start_batch(
    server: Loopback, tmp_path: Path, delay: float, *, stderr: int | None = subprocess.DEVNULL
) -> tuple[dict[str, bytes], Path, list[str], subprocess.Popen[bytes]]:
    """Serve N slow PDFs, start `oafetch run` over them in a subprocess; return what it needs."""
    bodies = _serve_pdfs(server, delay=delay)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    config = _write_config(tmp_path / "oafetch.toml")
    out = tmp_path / "out"
    args = _oafetch(
        "run", str(ids), "--out", str(out), "--config", str(config), "--workers", "2", "--quiet"
    )
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
    return bodies, out, args, proc


def _wait_for_rows(out: Path, rows: int, timeout: float) -> None:
    """Return once the run's manifest has ``rows`` lines (or the timeout passed)."""
    manifest = out / "manifest.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= rows:
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_resume_after_kill_9_completes_without_duplicates(server: Loopback, tmp_path: Path) -> None:
    bodies, out, args, proc = _start_batch(server, tmp_path, 0.1)
    _wait_for_rows(out, 5, 20)  # kill once a few works are stored, mid-run
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    first = _manifest(out)
    assert 0 < len(first) < N, "the kill landed mid-run"
    assert subprocess.run(args, timeout=120).returncode == 0
    rows = _manifest(out)
    successes = Counter(r["work_id"] for r in rows if r["outcome"] == "success")
    assert len(successes) == N and set(successes.values()) == {1}, "each work stored exactly once"
    stored = sorted((out / "pdf").glob("*.pdf"))
    assert len(stored) == N
    assert not list(out.rglob("*.part-*")), "no half-written file is left"
    assert sorted(p.read_bytes() for p in stored) == sorted(bodies.values())


@pytest.mark.slow
def test_sigint_stops_cleanly_and_the_run_resumes(server: Loopback, tmp_path: Path) -> None:
    _, out, args, proc = _start_batch(server, tmp_path, 0.2, stderr=subprocess.PIPE)
    _wait_for_rows(out, 2, 30)  # interrupt once the run is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not list(out.rglob("*.part-*"))
    assert (out / "summary.json").exists()
    done = {r["work_id"] for r in _manifest(out) if r["outcome"] == "success"}
    assert len(done) < N
    assert subprocess.run(args, timeout=120).returncode == 0
    assert {r["work_id"] for r in _manifest(out) if r["outcome"] == "success"} >= done
    assert len(list((out / "pdf").glob("*.pdf"))) == N


def test_a_second_run_on_the_same_output_dir_is_refused(make_config: Any) -> None:
    config = make_config()
    with Downloader(config), pytest.raises(OutputDirLocked, match="in use"):
        Downloader(config)


def test_malformed_input_lines_are_reported_and_the_batch_continues(
    server: Loopback, make_config: Any
) -> None:
    _serve_pdfs(server, n=2)
    items = [server.url("/w0.pdf"), "this is not an id", server.url("/w1.pdf")]
    with Downloader(make_config()) as dl:
        results = list(dl.run(items))
    bad = [r for r in results if r.reason is Reason.BAD_INPUT]
    assert len(bad) == 1 and bad[0].line == 2 and "line 2" in bad[0].message
    assert sum(r.outcome is Outcome.SUCCESS for r in results) == 2


def test_resume_skips_stored_works(server: Loopback, make_config: Any) -> None:
    _serve_pdfs(server, n=3)
    urls = [server.url(f"/w{i}.pdf") for i in range(3)]
    config = make_config()
    with Downloader(config) as dl:
        assert all(r.ok for r in dl.run(urls))
    hits = len(server.log)
    with Downloader(config) as dl:
        again = list(dl.run(urls))
    assert all(r.reason is Reason.RESUMED for r in again)
    assert len(server.log) == hits, "nothing was fetched again"


@pytest.mark.slow
def test_a_slow_host_does_not_stall_the_others(tmp_path: Path, make_config: Any) -> None:
    from loopback import start

    fast, slow = start("127.0.0.1"), start("127.0.0.2")
    try:
        _serve_pdfs(fast, n=24)
        _serve_pdfs(slow, n=3)
        urls = [slow.url(f"/w{i}.pdf") for i in range(3)] + [
            fast.url(f"/w{i}.pdf") for i in range(24)
        ]
        config = make_config(
            workers=2,
            politeness={"enabled": True, "defer_after_s": 0.3},
            rates={"127.0.0.1": "20/s", "127.0.0.2": "1/2s"},
        )
        finished: dict[str, float] = {}
        start_t = time.monotonic()
        with Downloader(config) as dl:
            for result in dl.run(urls):
                assert result.ok, result
                finished[result.work_id] = time.monotonic() - start_t
        fast_done = max(t for w, t in finished.items() if "127.0.0.1" in w)
        slow_done = max(t for w, t in finished.items() if "127.0.0.2" in w)
        # the slow host needs ≥ 2 s per request (4 requests with robots.txt): ≥ 6 s in all; the
        # 24 fast works (+ robots) need ~1.25 s at 20/s and must not queue behind it
        assert slow_done >= 5.5
        assert fast_done < slow_done / 2, (fast_done, slow_done)
    finally:
        for box in (fast, slow):
            box.server.shutdown()
            box.server.server_close()


def _held(pid: int, out: Path) -> bool:
    """Whether process ``pid`` has opened the lock of ``out`` (its signal handlers are in place
    by then). Read from /proc, so the probe never touches the lock itself."""
    lock = str((out / ".oafetch.lock").resolve())
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == lock:
                return True
        except OSError:
            continue
    return False


@pytest.mark.slow
def test_twenty_sigterms_at_random_points_lose_and_duplicate_nothing(
    server: Loopback, tmp_path: Path
) -> None:
    """Containers, Slurm and systemd stop jobs with SIGTERM: each of 20 stops (from "as soon
    as the run holds --out" to a few works in) exits 143 with summary.json written and no temp
    file left; the run after them stores every work exactly once."""
    rng = random.Random(int(os.environ.get("FAULTS_SEED", time.time_ns() % 2**32)))
    n = 100
    bodies = _serve_pdfs(server, n=n, delay=0.1)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    out = tmp_path / "out"
    args = _oafetch(
        "run",
        str(ids),
        "--out",
        str(out),
        "--config",
        str(_write_config(tmp_path / "oafetch.toml")),
        "--workers",
        "2",
        "--quiet",
    )
    for stop in range(20):
        before = len(_manifest(out)) if (out / "manifest.jsonl").exists() else 0
        (out / "summary.json").unlink(missing_ok=True)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        more = rng.choice([0, 0, 1, 1, 2])
        if more:
            _wait_for_rows(out, before + more, 60)
        else:  # as soon as the run holds its output directory
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None and not _held(proc.pid, out):
                time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, (stop, err)
        assert (out / "summary.json").exists(), f"stop {stop}: summary.json is written"
        assert not list(out.rglob("*.part-*")), f"stop {stop}: no half-written file is left"
        done = Counter(r["work_id"] for r in _manifest(out) if r["outcome"] == "success")
        assert set(done.values()) <= {1}, f"stop {stop}: no work recorded twice"
        assert len(done) < n, f"stop {stop}: the stops landed before the end of the batch"
    assert subprocess.run(args, timeout=120).returncode == 0
    successes = Counter(r["work_id"] for r in _manifest(out) if r["outcome"] == "success")
    assert len(successes) == n and set(successes.values()) == {1}, "0 lost, 0 duplicated"
    stored = sorted(p.read_bytes() for p in (out / "pdf").glob("*.pdf"))
    assert stored == sorted(bodies.values())


@pytest.mark.slow
def test_sigterm_stops_a_multi_process_run_cleanly_and_it_resumes(
    server: Loopback, tmp_path: Path
) -> None:
    """With --processes 2 a SIGTERM starts no new shard, lets the running ones finish and be
    published, exits 143 with summary.json; the next run stores the rest, each work once."""
    n = 60
    bodies = _serve_pdfs(server, n=n, delay=0.1)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    out = tmp_path / "out"
    config = str(_write_config(tmp_path / "oafetch.toml"))
    args = _oafetch(
        "run", str(ids), "--out", str(out), "--config", config, "--workers", "2", "--quiet"
    )
    args += ["--processes", "2", "--shard-size", "5"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_rows(out, 1, 120)  # a first shard is published
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert (out / "summary.json").exists()
    assert not list(out.rglob("*.part-*")) and not (out / ".cluster").exists()
    first = Counter(r["work_id"] for r in _manifest(out))
    assert 0 < len(first) < n and set(first.values()) == {1}  # whole shards, once each
    assert subprocess.run(args, timeout=180, stdout=subprocess.DEVNULL).returncode == 0
    successes = Counter(r["work_id"] for r in _manifest(out) if r["outcome"] == "success")
    assert len(successes) == n and set(successes.values()) == {1}, "0 lost, 0 duplicated"
    stored = sorted(p.read_bytes() for p in (out / "pdf").glob("*.pdf"))
    assert stored == sorted(bodies.values())


@pytest.mark.slow
def test_a_multi_process_run_killed_whole_resumes_with_nothing_lost_or_doubled(
    server: Loopback, tmp_path: Path
) -> None:
    """kill -9 of the driver and its worker processes at once (their process group): the next
    run stores every work exactly once, and no staged or half-written file is left."""
    n = 40
    bodies = _serve_pdfs(server, n=n, delay=0.1)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    out = tmp_path / "out"
    config = str(_write_config(tmp_path / "oafetch.toml"))
    args = _oafetch(
        "run", str(ids), "--out", str(out), "--config", config, "--workers", "2", "--quiet"
    )
    args += ["--processes", "2", "--shard-size", "4"]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_for_rows(out, 4, 120)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    before = Counter(r["work_id"] for r in _manifest(out))
    assert 0 < len(before) < n
    assert subprocess.run(args, timeout=180, stdout=subprocess.DEVNULL).returncode == 0
    successes = Counter(r["work_id"] for r in _manifest(out) if r["outcome"] == "success")
    assert len(successes) == n and set(successes.values()) == {1}, "0 lost, 0 duplicated"
    stored = sorted(p.read_bytes() for p in (out / "pdf").glob("*.pdf"))
    assert stored == sorted(bodies.values())
    assert not list(out.rglob("*.part-*")) and not (out / ".cluster").exists()
