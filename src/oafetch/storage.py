"""Where verified bodies go: ``pdf/ html/ xml/`` under the output dir, atomically, deduplicated.

A body is streamed into a temp file *beside* its target (``.<name>.part-<pid>-<n>``, a counter:
unique within the run, and the output directory's lock excludes other runs; never at a final
path), fsynced when durability is on, then published with ``os.replace`` — so a reader (or a
``kill -9``) never sees half a file at a final path. File names come from the work id through
:func:`safe_name` (sanitised, length-capped, with a hash suffix so two ids never share a file);
nothing from the network (``Content-Disposition``, URL paths) names a file. Identical bytes are
stored once: a second work with the same sha256 gets a hard link (or a manifest reference where
links are impossible). Which file holds which bytes is asked of an index (``state.sqlite``,
:class:`oafetch.state.StateStore`, in a run; a dict otherwise), under a lock per sha256 stripe,
not one lock for every publish.
``quarantine/`` with a JSON evidence file beside it (:meth:`Storage.quarantine`).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import itertools
import json
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from oafetch import outdir
from oafetch.errors import FetchError
from oafetch.tokens import DedupeAction, Kind, Reason

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SUFFIX = {Kind.PDF: ".pdf", Kind.HTML: ".html", Kind.XML: ".xml", Kind.OTHER: ".bin"}
_DIRS = {Kind.PDF: "pdf", Kind.HTML: "html", Kind.XML: "xml", Kind.OTHER: "other"}
MAX_STEM = 80


def safe_name(work_id: str) -> str:
    """A file stem for ``work_id``: only ``[A-Za-z0-9._-]``, ≤ 80 chars + a 10-hex hash suffix.

    >>> safe_name("doi:10.1038/nature12373")
    'doi_10.1038_nature12373-d2c1de0a6d'
    """
    digest = hashlib.sha256(work_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    stem = _UNSAFE.sub("_", work_id).strip("._-")[:MAX_STEM].rstrip("._-") or "work"
    return f"{stem}-{digest}"


def disk_error(exc: OSError, path: Path) -> FetchError:
    """A clear error for a failed write (disk full, permissions …)."""
    what = {
        errno.ENOSPC: "disk full",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ELOOP: "a symbolic link is in the way (oafetch never writes through one)",
    }
    label = what.get(exc.errno or 0, exc.strerror or str(exc))
    return FetchError(Reason.DISK_ERROR, f"cannot write {path}: {label}")


class BlobIndex(Protocol):
    """sha256 → the relative path of the first file stored with those bytes."""

    def blob(self, sha256: str) -> str | None: ...

    def add_blob(self, sha256: str, relpath: str) -> None: ...

    def forget_blob(self, sha256: str, relpath: str) -> None: ...


class MemoryBlobs:
    """A :class:`BlobIndex` in a dict (a :class:`Storage` used without a state store)."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}

    def blob(self, sha256: str) -> str | None:
        return self._paths.get(sha256)

    def add_blob(self, sha256: str, relpath: str) -> None:
        self._paths.setdefault(sha256, relpath)

    def forget_blob(self, sha256: str, relpath: str) -> None:
        if self._paths.get(sha256) == relpath:
            del self._paths[sha256]


_STRIPES = 64  # publishes of different bytes rarely share a lock


@dataclass(frozen=True)
class Stored:
    path: Path  # absolute final path
    relpath: str  # relative to the output dir (what manifests and telemetry record)
    dedupe: DedupeAction


class Storage:
    """The output directory's files. Thread-safe."""

    def __init__(
        self,
        root: Path,
        *,
        fsync: bool = True,
        content_addressed: bool = False,
        index: BlobIndex | None = None,
    ) -> None:
        self.root = root
        self.fsync = fsync
        self.content_addressed = content_addressed
        self.index: BlobIndex = index if index is not None else MemoryBlobs()
        self._lock = threading.Lock()  # the set of unsynced directories
        self._stripes = tuple(threading.Lock() for _ in range(_STRIPES))
        self._unsynced: set[Path] = set()  # directories with renames not yet fsynced
        self._serial = itertools.count(1)  # temp names (next() is atomic under the GIL)
        self._pid = os.getpid()

    def prepare(self) -> None:
        """Create the layout; remove temp files a killed run left behind.

        Raises:
            OutputDirError: a content folder is a link or not a directory (nothing is removed).
        """
        for name in ("pdf", "html", "xml"):
            os.close(outdir.open_dir(self.root, name, create=True))
        for sub in _DIRS.values():
            try:
                folder = outdir.open_dir(self.root, sub)
            except FileNotFoundError:
                continue
            try:
                # temp bodies and dedupe-link temps a killed run left (content-addressed
                # layouts keep them one level down)
                _clear_temps(folder, (".*.part-*", ".*.link-*"))
                for name in os.listdir(folder):
                    if _is_dir(folder, name):
                        with (
                            contextlib.suppress(OSError),
                            outdir.directory(self.root, f"{sub}/{name}") as inner,
                        ):
                            _clear_temps(inner, (".*.link-*",))
            finally:
                os.close(folder)

    def _temp_suffix(self) -> str:
        return f"{self._pid:x}-{next(self._serial):x}"

    def target(self, work_id: str, kind: Kind, sha256: str | None = None) -> Path:
        folder = self.root / _DIRS[kind]
        if self.content_addressed and sha256:
            return folder / sha256[:2] / f"{sha256}{_SUFFIX[kind]}"
        return folder / f"{safe_name(work_id)}{_SUFFIX[kind]}"

    def open_temp(self, work_id: str) -> tuple[Path, BinaryIO]:
        """A new temp file in the output dir for ``work_id``'s body (caller must close it)."""
        path = self.root / "pdf" / f".{safe_name(work_id)}.part-{self._temp_suffix()}"
        try:
            with outdir.directory(self.root, "pdf", create=True) as folder:
                fd = os.open(path.name, _NEW_FILE, 0o644, dir_fd=folder)
            return path, os.fdopen(fd, "wb")
        except OSError as exc:
            raise disk_error(exc, path) from exc

    def sync(self) -> None:
        """fsync the directories that received files (called once, when the run closes).

        Each file's bytes are fsynced before its rename; the renames themselves become durable
        here. A crash in between can lose a rename, never expose half a file — and resume
        re-checks every recorded file (existence and size; its sha256 too with
        ``download.verify_stored``) before trusting it.
        """
        with self._lock:
            pending, self._unsynced = self._unsynced, set()
        for folder in pending:
            with contextlib.suppress(OSError), outdir.directory(self.root, self._rel(folder)) as fd:
                os.fsync(fd)

    def discard(self, temp: Path) -> None:
        with (
            contextlib.suppress(OSError),
            outdir.directory(self.root, self._rel(temp.parent)) as folder,
        ):
            os.unlink(temp.name, dir_fd=folder)

    def publish(self, temp: Path, *, work_id: str, kind: Kind, sha256: str) -> Stored:
        """Move a verified, closed temp file to its final path (or link identical bytes).

        Every folder is reached without following a link (:mod:`oafetch.outdir`); a link at the
        final path is replaced, never written through.
        """
        final = self.target(work_id, kind, sha256)
        try:
            with (
                outdir.directory(self.root, self._rel(temp.parent)) as source,
                outdir.directory(self.root, self._rel(final.parent), create=True) as dest,
                self._stripes[int(sha256[:8], 16) % _STRIPES],
            ):
                known = self.index.blob(sha256)
                existing = self.root / known if known else None
                if (
                    existing is not None
                    and existing != final
                    and outdir.is_regular(self.root, self._rel(existing))
                ):
                    action = self._link(existing, final)
                    self.discard(temp)
                    return Stored(
                        final if action is DedupeAction.LINKED else existing,
                        self._rel(final if action is DedupeAction.LINKED else existing),
                        action,
                    )
                if _sha256_at(dest, final.name) == sha256:
                    self.discard(temp)
                    self.index.add_blob(sha256, self._rel(final))
                    return Stored(final, self._rel(final), DedupeAction.KEPT)
                os.replace(temp.name, final.name, src_dir_fd=source, dst_dir_fd=dest)
                self.index.add_blob(sha256, self._rel(final))
                if self.fsync:
                    with self._lock:
                        self._unsynced.add(final.parent)
        except OSError as exc:
            self.discard(temp)
            raise disk_error(exc, final) from exc
        return Stored(final, self._rel(final), DedupeAction.STORED)

    def adopt(self, stored: Stored, *, work_id: str, kind: Kind) -> Stored:
        """Give ``work_id`` the file another work of this run stored from the same URL.

        A hard link at the work's own path (``linked``), or a reference to the existing file
        where links are impossible (``referenced``). Raises nothing for a vanished file: the
        caller then fetches again.
        """
        final = self.target(work_id, kind)
        if final == stored.path:
            return Stored(final, self._rel(final), DedupeAction.KEPT)
        try:
            os.close(outdir.open_dir(self.root, self._rel(final.parent), create=True))
            action = self._link(stored.path, final)
        except OSError as exc:
            raise disk_error(exc, final) from exc
        chosen = final if action is DedupeAction.LINKED else stored.path
        return Stored(chosen, self._rel(chosen), action)

    def quarantine(
        self, stored: Stored, *, work_id: str, sha256: str, evidence: dict[str, Any]
    ) -> str:
        """Take a stored file that is not ``work_id``'s work out of the work's place.

        The work's own file moves to ``quarantine/<name>-<sha256[:12]>.pdf`` (another work's
        file it merely references is hard-linked there, never moved), and
        ``quarantine/<name>-<sha256[:12]>.json`` records ``evidence``. Later works with the
        same bytes no longer dedupe against it. Returns the quarantined file's path relative
        to the output directory.

        Raises:
            FetchError: the file could not be moved or the evidence written (``disk-error``).
        """
        stem = f"{safe_name(work_id)}-{sha256[:12]}"
        rel = f"{outdir.QUARANTINE}/{stem}{stored.path.suffix or '.bin'}"
        # Its own path (stored, linked or kept at the work's name) moves; a shared
        # content-addressed file or another work's file stays where the other works find it.
        own = stored.dedupe is not DedupeAction.REFERENCED and (
            not self.content_addressed or stored.dedupe is DedupeAction.STORED
        )
        try:
            with (
                outdir.directory(self.root, self._rel(stored.path.parent)) as source,
                outdir.directory(self.root, outdir.QUARANTINE, create=True) as dest,
                self._stripes[int(sha256[:8], 16) % _STRIPES],
            ):
                name = PurePosixPath(rel).name
                if own:
                    os.replace(stored.path.name, name, src_dir_fd=source, dst_dir_fd=dest)
                    self.index.forget_blob(sha256, stored.relpath)
                else:
                    with contextlib.suppress(FileExistsError):
                        os.link(
                            stored.path.name,
                            name,
                            src_dir_fd=source,
                            dst_dir_fd=dest,
                            follow_symlinks=False,
                        )
            data = json.dumps(evidence, indent=2, ensure_ascii=False, default=str) + "\n"
            fd = outdir.open_fd(
                self.root, f"{outdir.QUARANTINE}/{stem}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            )
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8"))
        except OSError as exc:
            raise disk_error(exc, self.root / rel) from exc
        return rel

    def _link(self, existing: Path, final: Path) -> DedupeAction:
        """Hard-link ``existing`` at ``final`` (through a temp name and a rename)."""
        tmp = f".{final.name}.link-{self._temp_suffix()}"
        try:
            with (
                outdir.directory(self.root, self._rel(existing.parent)) as source,
                outdir.directory(self.root, self._rel(final.parent)) as dest,
            ):
                try:
                    os.link(
                        existing.name,
                        tmp,
                        src_dir_fd=source,
                        dst_dir_fd=dest,
                        follow_symlinks=False,
                    )
                    os.replace(tmp, final.name, src_dir_fd=dest, dst_dir_fd=dest)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dest)
                    raise
            return DedupeAction.LINKED
        except OSError:
            return DedupeAction.REFERENCED

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _clear_temps(folder: int, patterns: tuple[str, ...]) -> None:
    """Unlink the entries of the directory ``folder`` matching ``patterns`` (never a directory)."""
    for name in os.listdir(folder):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns) and not _is_dir(folder, name):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=folder)


def _is_dir(folder: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _sha256_at(folder: int, name: str) -> str | None:
    """The sha256 of the regular file ``name`` in ``folder`` (a link or nothing there: None)."""
    try:
        fd = os.open(name, _READ_FILE, dir_fd=folder)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return _digest(fh)


def _digest(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return _digest(fh)


sha256_file = _sha256_file


def md5_hex(checksum: str | None) -> str | None:
    """The hex digest of a source's md5 checksum (``md5:<hex>`` or bare hex), else ``None``."""
    if not checksum:
        return None
    algo, _, digest = checksum.strip().lower().rpartition(":")
    if algo not in ("", "md5") or len(digest) != 32:
        return None
    return digest if all(c in "0123456789abcdef" for c in digest) else None
