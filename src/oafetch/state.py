"""``state.sqlite``: the output directory's resume and dedupe index, on disk.

Resume asks "what did an earlier run store for this work?" and dedupe "which file already holds
these bytes?" once per work. Kept in dicts, the answers grew by a few KB per stored file (every
prior manifest row, the sha256 map); here they are two indexed SQLite tables in the output
directory, so memory stays flat whatever the number of works:

* ``works``: work id → the stored file of its latest successful manifest row (path, sha256,
  bytes, content type, resolver, URL); a later failure never hides a stored file;
* ``blobs``: sha256 → the first file stored with those bytes;
* ``meta``: how far into ``manifest.jsonl`` the index has read (offset, the file's identity
  and the bytes just before the offset), and how far the telemetry store's ``downloads`` table
  is known to hold every stored work (set when a run with the store closes cleanly; the crash
  recovery of :mod:`oafetch.telemetry.recovery` reads the manifest from there).

The manifest stays the record: the index is derived from it and can always be rebuilt. At open,
rows the index has not read yet (appended by a run that was killed, or an older oafetch) are
read from the stored offset on, streaming; a manifest that is not the one indexed (another file,
truncated, rewritten) is indexed again from its start. During a run each stored file's row goes
in as the manifest row is written, committed in batches (``synchronous = OFF``: a crash loses
at most the uncommitted tail, which the next open reads back from the manifest).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any

from oafetch import outdir
from oafetch.manifest import PriorOutcome, read_manifest
from oafetch.tokens import Outcome

log = logging.getLogger(__name__)

#: Rows written between commits during a run (a crash loses at most these, rebuilt at open).
COMMIT_EVERY = 500
_TAIL = 256  # bytes before the indexed offset that must still be there, unchanged

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS works (
    work_id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT, bytes INTEGER,
    content_type TEXT, resolver TEXT, url TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, path TEXT NOT NULL) WITHOUT ROWID;
"""
_PUT_WORK = "INSERT OR REPLACE INTO works VALUES (?, ?, ?, ?, ?, ?, ?)"
_PUT_BLOB = "INSERT OR IGNORE INTO blobs VALUES (?, ?)"


def _work_row(row: dict[str, Any]) -> tuple[Any, ...] | None:
    """The ``works`` row of a manifest row that stored a file, else None."""
    if row.get("outcome") != Outcome.SUCCESS or row.get("dry_run") or not row.get("path"):
        return None
    return (
        row["work_id"],
        row["path"],
        row.get("sha256"),
        row.get("bytes"),
        row.get("content_type"),
        row.get("resolver"),
        row.get("url"),
    )


class StateStore:
    """The resume/dedupe index of one output directory. Thread-safe.

    Raises (from the constructor):
        OutputDirError: ``state.sqlite`` or a journal name is a link or another unsafe file.
    """

    def __init__(self, root: Path, *, manifest: Path | None = None) -> None:
        self.root = root
        self.path = root / outdir.STATE
        self.manifest = manifest or root / outdir.MANIFEST
        self._lock = threading.Lock()
        self._pending = 0
        self._run_table = False
        outdir.check_sqlite(self.path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=OFF")  # derived data: rebuilt from the manifest
            self._conn.executescript(_SCHEMA)
            self._conn.execute("BEGIN")
            self.caught_up = self._catch_up()
        except sqlite3.DatabaseError as exc:  # not a database (or damaged): rebuild it
            log.warning("%s unreadable (%s): rebuilding it from the manifest", self.path, exc)
            self._conn.close()
            for suffix in ("", *outdir.SQLITE_JOURNALS):
                outdir.unlink(root, outdir.STATE + suffix)
            outdir.check_sqlite(self.path)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=OFF")
            self._conn.executescript(_SCHEMA)
            self._conn.execute("BEGIN")
            self.caught_up = self._catch_up()

    # -- the manifest → index ------------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def _identity(self, size: int) -> tuple[str, int, str]:
        """(file identity, offset, checksum of the bytes before it) of the manifest at ``size``."""
        info = os.stat(self.manifest)
        start = max(0, size - _TAIL)
        with open(self.manifest, "rb") as fh:
            fh.seek(start)
            tail = fh.read(size - start)
        return f"{info.st_dev}:{info.st_ino}", size, format(zlib.crc32(tail), "08x")

    def _valid(self, offset: str | None, crc: str | None, file: str | None) -> int:
        """``offset`` if the manifest still holds, unchanged, the bytes it was taken after."""
        if not offset:
            return 0
        try:
            size = os.stat(self.manifest).st_size
            at = int(offset)
            return at if at <= size and self._identity(at) == (file, at, crc) else 0
        except (OSError, ValueError):
            return 0

    def telemetry_offset(self) -> int:
        """The manifest byte before which every stored work is in ``downloads`` (else 0)."""
        with self._lock:
            meta = self._meta()
        return self._valid(meta.get("tel_offset"), meta.get("tel_crc"), meta.get("file"))

    def _catch_up(self) -> int:
        """Index the manifest rows not read yet; return how many rows were read."""
        try:
            size = os.stat(self.manifest).st_size
        except FileNotFoundError:
            size = 0
        meta = self._meta()
        start = self._valid(meta.get("offset"), meta.get("crc"), meta.get("file")) if size else 0
        if start == 0:
            self._conn.execute("DELETE FROM meta")
            self._conn.execute("DELETE FROM works")
            self._conn.execute("DELETE FROM blobs")
        read = 0
        if size > start:
            read = self._index_from(start)
        self._mark(size)
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")
        if read:
            log.info("state index: read %d manifest rows from byte %d", read, start)
        return read

    def _index_from(self, start: int) -> int:
        read = 0
        for _, row, error in read_manifest(self.manifest, offset=start):
            if error or row is None:
                log.warning("%s", error)
                continue
            read += 1
            if (values := _work_row(row)) is not None:
                self._conn.execute(_PUT_WORK, values)
                if values[2]:
                    self._conn.execute(_PUT_BLOB, (values[2], values[1]))
        return read

    def _mark(self, size: int, *, telemetry: bool = False) -> None:
        if not size:
            self._conn.execute("DELETE FROM meta")
            return
        file, offset, crc = self._identity(size)
        marks = [("file", file), ("offset", str(offset)), ("crc", crc)]
        if telemetry:
            marks += [("tel_offset", str(offset)), ("tel_crc", crc)]
        self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", marks)

    # -- look-ups -------------------------------------------------------------------------------
    def prior(self, work_id: str) -> PriorOutcome | None:
        """What an earlier run stored for ``work_id`` (its latest stored file), or None."""
        with self._lock:
            found = self._conn.execute(
                "SELECT path, sha256, bytes, content_type, resolver, url FROM works "
                "WHERE work_id = ?",
                (work_id,),
            ).fetchone()
        if found is None:
            return None
        path, sha, size, ctype, resolver, url = found
        row = {"bytes": size, "content_type": ctype, "resolver": resolver, "url": url}
        return PriorOutcome(outcome=str(Outcome.SUCCESS), path=path, sha256=sha, row=row)

    def blob(self, sha256: str) -> str | None:
        """The relative path of the first file stored with these bytes, or None."""
        with self._lock:
            found = self._conn.execute(
                "SELECT path FROM blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return found[0] if found else None

    def count(self) -> tuple[int, int]:
        """(works, blobs) indexed."""
        with self._lock:
            works = self._conn.execute("SELECT count(*) FROM works").fetchone()[0]
            blobs = self._conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
        return int(works), int(blobs)

    def first_in_run(self, work_id: str) -> bool:
        """True the first time this run (this open) meets ``work_id``: a temporary table, so
        the set of the run's works stays on disk, not in memory, however long the run."""
        with self._lock:
            if not self._run_table:
                self._conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS run_works (work_id TEXT PRIMARY KEY) "
                    "WITHOUT ROWID"
                )
                self._run_table = True
            added = self._conn.execute(
                "INSERT OR IGNORE INTO temp.run_works VALUES (?)", (work_id,)
            ).rowcount
        return added == 1

    # -- updates during a run -------------------------------------------------------------------
    def add_blob(self, sha256: str, relpath: str) -> None:
        """Index a file this run stored (the first path for a sha256 is kept)."""
        with self._lock:
            self._conn.execute(_PUT_BLOB, (sha256, relpath))
            self._tick()

    def forget_blob(self, sha256: str, relpath: str) -> None:
        """Drop the index entry of a file moved away (quarantined), if it is the one kept."""
        with self._lock:
            self._conn.execute("DELETE FROM blobs WHERE sha256 = ? AND path = ?", (sha256, relpath))
            self._tick()

    def record(self, row: dict[str, Any]) -> None:
        """Index a manifest row as it is written (only rows that stored a file are kept)."""
        values = _work_row(row)
        if values is None:
            return
        with self._lock:  # its blob was indexed when the file was published
            self._conn.execute(_PUT_WORK, values)
            self._tick()

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= COMMIT_EVERY:
            self._commit()

    def _commit(self) -> None:
        self._pending = 0
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")

    def close(self, *, manifest_complete: bool = True, telemetry_complete: bool = False) -> None:
        """Commit; with ``manifest_complete`` (every row written and flushed) mark the whole
        manifest as read, so the next open reads nothing back; with ``telemetry_complete`` (the
        telemetry store received every row of the run) mark it as in ``downloads`` too."""
        with self._lock:
            if self._conn is None:
                return
            try:
                if manifest_complete:
                    with contextlib.suppress(FileNotFoundError):
                        size = os.stat(self.manifest).st_size
                        self._mark(size, telemetry=telemetry_complete)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:  # a full disk: the next open rebuilds from the manifest
                log.warning("state index not saved: %s", exc)
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
