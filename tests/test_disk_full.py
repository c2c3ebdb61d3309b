"""A full disk stops the batch cleanly: a specific message and exit code, no torn or duplicated
telemetry line, and a resume (with space again) that stores every work exactly once.

The output directory is a small tmpfs mounted by the test (skipped where mounting is not
allowed) and unmounted afterwards."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import Loopback, pdf_bytes

N = 30
EXIT_DISK = 74


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _grow(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)


def _batch(server: Loopback, tmp_path: Path, out: Path) -> list[str]:
    for i in range(N):
        body = pdf_bytes(40_000 + i, seed=i)
        server.routes[f"/d{i}.pdf"] = lambda h, body=body: h.reply(200, body, "application/pdf")
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(server.url(f"/d{i}.pdf") + "\n" for i in range(N)))
    config = tmp_path / "oafetch.toml"
    config.write_text(
        "[politeness]\nenabled = false\n[cache]\nenabled = false\n[robots]\nenabled = false\n"
        "[download]\nfsync = false\nmin_pdf_bytes = 100\n"
    )
    return [
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
    ]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_full_disk_stops_the_batch_and_the_resume_loses_nothing(
    server: Loopback, tmp_path: Path, small_disk: Path
) -> None:
    out = small_disk / "out"
    args = _batch(server, tmp_path, out)
    first = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert first.returncode == EXIT_DISK, first.stderr[-2000:]
    assert "No space left" in first.stderr and "Traceback" not in first.stderr
    spans = _lines(out / "spans.jsonl")
    ids = [json.loads(line)["span_id"] for line in spans]  # every line whole
    assert len(ids) == len(set(ids)), "no span written twice"
    manifest = [json.loads(line) for line in _lines(out / "manifest.jsonl")]
    assert len([r for r in manifest if r["outcome"] == "success"]) < N, "the disk did fill"

    _grow(small_disk)
    second = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = [json.loads(line) for line in _lines(out / "manifest.jsonl")]
    stored = Counter(r["work_id"] for r in rows if r["outcome"] == "success")
    assert len(stored) == N and set(stored.values()) == {1}, "0 lost, 0 stored twice"
    assert len(list((out / "pdf").glob("*.pdf"))) == N
    assert not list(out.rglob("*.part-*"))
    spans = _lines(out / "spans.jsonl")
    ids = [json.loads(line)["span_id"] for line in spans]
    assert len(ids) == len(set(ids))


def test_starting_on_a_full_disk_is_a_clear_message(
    server: Loopback, tmp_path: Path, small_disk: Path
) -> None:
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
    args = _batch(server, tmp_path, small_disk / "out")
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == EXIT_DISK, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "No space left" in done.stderr and "--out" in done.stderr
