"""``manifest.jsonl`` (one row per work outcome), ``attempts.csv`` (one row per attempt), resume.

Both files are appended by one writer each, under a lock, a line at a time and flushed, so a
killed run leaves at most one torn last line; the resume reader tolerates exactly that (and
reports any other bad line without stopping). No credential is ever written: URLs pass through
:func:`~oafetch.urls.redact_url` and messages through the client's scrubber.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from oafetch import outdir
from oafetch.urls import redact_url

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = (
    "ts,run_id,resolver,url,verb,status,http_status,content_type,elapsed_ms,bytes_written,"
    "content_length_hdr,reason"
)
ATTEMPT_FIELDS = tuple(ATTEMPTS_HEADER.split(","))

MANIFEST_FIELDS = (
    "ts",
    "run_id",
    "work_id",
    "artifact_id",
    "resolver",
    "url",
    "outcome",
    "ok",
    "reason",
    "path",
    "content_type",
    "bytes",
    "sha256",
    "html_paths",
    "config_hash",
    "dry_run",
    "trace_id",
    "version",
    "license",
    "host_type",
    "retracted",
    "tdm_policy",
    "identity",
    "identity_score",
    "identity_evidence",
    "quarantined",
    "dedupe_action",
    "message",
    "input",
    "candidates",
    "object",
)


@dataclass(frozen=True)
class AttemptRow:
    """One row of ``attempts.csv``."""

    resolver: str
    url: str
    verb: str
    status: str
    reason: str
    http_status: int | None = None
    content_type: str | None = None
    elapsed_ms: float | None = None
    bytes_written: int | None = None
    content_length_hdr: int | None = None


class _Appender:
    """One file of the output directory, appended a line at a time; never opened through a link
    (:func:`oafetch.outdir.open_append`; raises :class:`~oafetch.errors.OutputDirError`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh = outdir.open_append(path, newline="")

    def write_line(self, line: str) -> None:
        """Append ``line`` whole or not at all (:func:`oafetch.outdir.append_whole`).

        Raises:
            OSError: the write failed; the file is as it was.
        """
        with self._lock:
            outdir.append_whole(self._fh.fileno(), line.encode("utf-8"))

    def close(self, fsync: bool = True) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._fh.flush()
            if fsync:
                os.fsync(self._fh.fileno())
            self._fh.close()


class RowIndex(Protocol):
    def record(self, row: dict[str, Any]) -> None: ...


class ManifestWriter(_Appender):
    """Appends manifest rows; ``write`` is thread-safe. ``index`` (the state store) sees each
    row once it is written."""

    def __init__(self, path: Path, index: RowIndex | None = None) -> None:
        _repair_torn_tail(path)
        super().__init__(path)
        self.index = index

    def write(self, row: dict[str, Any]) -> None:
        clean = {k: row.get(k) for k in MANIFEST_FIELDS if k in row or k in ("ts",)}
        clean["ts"] = row.get("ts") or time.time()
        if clean.get("url"):
            clean["url"] = redact_url(str(clean["url"]))
        self.write_line(json.dumps(clean, ensure_ascii=False, separators=(",", ":")) + "\n")
        if self.index is not None:
            self.index.record(clean)


class AttemptsWriter(_Appender):
    """Appends ``attempts.csv`` rows (header written once, verbatim)."""

    def __init__(self, path: Path, run_id: str) -> None:
        super().__init__(path)
        self.run_id = run_id
        if os.fstat(self._fh.fileno()).st_size == 0:
            self.write_line(ATTEMPTS_HEADER + "\n")

    def write(self, row: AttemptRow) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(
            [
                f"{time.time():.3f}",
                self.run_id,
                row.resolver,
                redact_url(row.url),
                row.verb,
                row.status,
                _blank(row.http_status),
                row.content_type or "",
                _blank(None if row.elapsed_ms is None else round(row.elapsed_ms, 1)),
                _blank(row.bytes_written),
                _blank(row.content_length_hdr),
                row.reason,
            ]
        )
        self.write_line(buf.getvalue())


def _blank(value: object) -> str:
    return "" if value is None else str(value)


def _repair_torn_tail(path: Path) -> None:
    """If a killed run left a partial last line, end it so new rows start on a fresh line."""
    try:
        fd = outdir.open_fd(path.parent, path.name, os.O_RDWR)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb+") as fh:
        if os.fstat(fd).st_size == 0:
            return
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.write(b"\n")


@dataclass(frozen=True)
class PriorOutcome:
    """What an earlier run recorded for a work (the last row wins)."""

    outcome: str
    path: str | None
    sha256: str | None
    row: dict[str, Any]


def read_manifest(
    path: Path, *, offset: int = 0
) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield ``(line_no, row, error)`` per line; a bad line yields an error, never raises.

    ``offset``: start at this byte (a line start); line numbers then count from there.
    """
    if not path.exists():
        return
    with path.open("rb") as fh:
        fh.seek(offset)
        for number, raw in enumerate(fh, start=1):
            text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                yield number, None, f"{path}:{number}: unreadable manifest line (torn write?)"
                continue
            if not isinstance(row, dict) or "work_id" not in row:
                yield number, None, f"{path}:{number}: manifest line without work_id"
                continue
            if (problem := _row_problem(row)) is not None:
                yield number, None, f"{path}:{number}: manifest line ignored: {problem}"
                continue
            yield number, row, None


def _row_problem(row: dict[str, Any]) -> str | None:
    """Why a parsed row cannot be trusted for resume (wrong types, a path leaving the dir)."""
    if not isinstance(row["work_id"], str) or not row["work_id"]:
        return f"work_id is not a non-empty string ({row['work_id']!r:.60})"
    for key in ("path", "sha256", "outcome"):
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} is not a string ({row[key]!r:.60})"
    size = row.get("bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        return f"bytes is not an integer ({size!r:.60})"
    relpath = row.get("path")
    if relpath is not None and (
        relpath.startswith(("/", "\\"))
        or ".." in relpath.replace("\\", "/").split("/")
        or "\x00" in relpath
    ):
        return f"path {relpath!r:.80} leaves the output directory"
    return None
