"""The output directory, written without ever following a link planted inside it.

Under ``--out`` oafetch writes only the names below: the content folders ``pdf/ html/ xml/
other/`` (and their temp files), ``quarantine/`` (files that proved not to be their work),
``.oafetch.lock``, ``manifest.jsonl``, ``attempts.csv``, ``spans.jsonl``, ``telemetry.sqlite``
and ``state.sqlite`` with their journals, and ``summary.json``. ``--out`` itself
may be a symbolic link the user made: it is resolved once, when a run starts (:func:`resolve`).
A link *inside* it would let whoever planted it redirect oafetch's writes, truncations and
temp-file clean-up to any file the user can write, so:

* :func:`check_layout` refuses, before anything is written, a layout where one of those names is
  a symbolic link, not the kind of file oafetch makes, or a file with other hard links (writing
  it would change that other file too) — one :class:`~oafetch.errors.OutputDirError` naming each;
* every open, rename, link and unlink below the root goes through a directory descriptor opened
  component by component with ``O_NOFOLLOW`` (:func:`open_dir`), and files are opened with
  ``O_NOFOLLOW`` (:func:`open_fd`): a link planted while a run is going fails that one operation
  instead of being followed;
* SQLite opens its files by path itself, so :func:`check_sqlite` looks at the database and its
  journal names just before the connection is made and creates a missing database with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (what is left is the instant between that check and SQLite's
  own ``open``).

Every function here is thread-safe (each call opens and closes its own descriptors).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from oafetch.errors import OutputDirError

LOCK = ".oafetch.lock"
MANIFEST = "manifest.jsonl"
ATTEMPTS = "attempts.csv"
SPANS = "spans.jsonl"
SQLITE = "telemetry.sqlite"
STATE = "state.sqlite"  # the resume/dedupe index (oafetch.state)
SQLITE_JOURNALS = ("-wal", "-shm", "-journal")
SUMMARY = "summary.json"
SUMMARY_TEMP = f".{SUMMARY}.tmp"

QUARANTINE = "quarantine"  # files that are not the work they came for, with their evidence
CONTENT_DIRS = ("pdf", "html", "xml", "other", QUARANTINE)
# what the engines write there (oafetch.engines): shards' staging, shards' telemetry stores
STAGING = ".cluster"
TELEMETRY_SHARDS = "telemetry-shards"
ENGINE_DIRS = (STAGING, TELEMETRY_SHARDS)
FILES = (
    LOCK,
    MANIFEST,
    ATTEMPTS,
    SPANS,
    SQLITE,
    *(SQLITE + suffix for suffix in SQLITE_JOURNALS),
    STATE,
    *(STATE + suffix for suffix in SQLITE_JOURNALS),
    SUMMARY,
    SUMMARY_TEMP,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITES = os.O_WRONLY | os.O_RDWR
_ADVICE = (
    "oafetch never writes through a link inside its output directory: remove it, or point --out "
    "at another directory (--out itself may be a link)"
)


def resolve(path: str | os.PathLike[str]) -> Path:
    """The real, absolute path of an output directory (a link the user made is followed once)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def problem(path: Path, *, directory: bool) -> str | None:
    """Why oafetch must not write at ``path`` (a link, the wrong kind, hard-linked), or None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path} cannot be inspected: {exc.strerror or exc}"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"{path} is a symbolic link (to {target})"
    if directory and not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if not directory and not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file"
    if not directory and info.st_nlink > 1:
        return (
            f"{path} has {info.st_nlink - 1} other hard link(s) "
            "(writing it would change another file too)"
        )
    return None


def check_layout(root: Path) -> None:
    """Refuse an output directory where a name oafetch writes is unsafe to write.

    Call it before anything is written (the lock included).

    Raises:
        OutputDirError: one line per link, wrong kind of file or hard-linked file, then what to do.
    """
    found = [
        p
        for name, is_dir in [
            *((d, True) for d in (*CONTENT_DIRS, *ENGINE_DIRS)),
            *((f, False) for f in FILES),
        ]
        if (p := problem(root / name, directory=is_dir)) is not None
    ]
    if found:
        raise OutputDirError(
            f"output directory {root} is unsafe to write:\n  "
            + "\n  ".join(found)
            + "\n"
            + (_ADVICE if len(found) == 1 else _ADVICE.replace("remove it", "remove them"))
        )


def _refusal(path: Path, exc: OSError, *, directory: bool) -> OSError:
    """A clear error for an ``open`` that ``O_NOFOLLOW`` (or ``O_DIRECTORY``) refused."""
    what = problem(path, directory=directory)
    if what is None or exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK, errno.ENXIO):
        return exc
    return OutputDirError(f"{what}; {_ADVICE}")


def open_dir(root: Path, rel: str | PurePosixPath = "", *, create: bool = False) -> int:
    """A descriptor of the directory ``root/rel``, no link followed below ``root``.

    ``root`` itself is opened as given (the resolved ``--out``). The caller closes the descriptor.

    Args:
        create: make missing directories, ``root`` included (mode 0o777 minus the umask).

    Raises:
        OutputDirError: a component is a symbolic link or not a directory.
        OSError: anything else (missing without ``create``, permissions, disk).
    """
    # Open first and create only what is missing: the usual call finds every folder there, and
    # costs one open per component (no mkdir failing with EEXIST, no path built).
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parts = PurePosixPath(rel).parts
    try:
        for i, part in enumerate(parts):
            try:
                try:
                    inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o777, dir_fd=fd)
                    inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _refusal(root.joinpath(*parts[: i + 1]), exc, directory=True) from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def directory(root: Path, rel: str | PurePosixPath = "", *, create: bool = False) -> Iterator[int]:
    """:func:`open_dir` as a context manager (the descriptor is closed on exit)."""
    fd = open_dir(root, rel, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def open_fd(root: Path, rel: str | PurePosixPath, flags: int, mode: int = 0o644) -> int:
    """Open the file ``root/rel`` with ``O_NOFOLLOW`` everywhere below ``root``.

    The file must be a regular file; one opened for writing must have no other hard link. A FIFO
    or device never blocks the open (it is refused).

    Raises:
        OutputDirError: a link, a non-regular file or a hard-linked file for writing.
        OSError: anything else.
    """
    rel = PurePosixPath(rel)
    path = root / rel
    with directory(root, rel.parent, create=bool(flags & os.O_CREAT)) as parent:
        try:
            fd = os.open(
                rel.name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=parent
            )
        except OSError as exc:
            raise _refusal(path, exc, directory=False) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OutputDirError(f"{path} is not a regular file; {_ADVICE}")
        if flags & _WRITES and info.st_nlink > 1:
            raise OutputDirError(
                f"{path} has {info.st_nlink - 1} other hard link(s) (writing it would change "
                "another file too); remove it or choose another --out"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path: Path, *, encoding: str = "utf-8", newline: str | None = None) -> IO[str]:
    """``path`` opened to append text (created if missing), never through a link.

    ``path.parent`` is the root (the output directory); nothing below it is followed.
    """
    fd = open_fd(path.parent, path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding=encoding, newline=newline)


def write_atomic(root: Path, name: str, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``root/name`` with ``data`` through a fresh temp file and a rename.

    The temp name is cleared first (a stale one, or a link planted there, is unlinked — never
    followed) and created with ``O_EXCL | O_NOFOLLOW``; the rename replaces a link at ``name``
    rather than writing where it points.
    """
    temp = f".{name}.tmp"
    with directory(root) as folder:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=folder)
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=folder,
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
            os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise


def check_sqlite(path: Path) -> None:
    """Make ``path`` (a SQLite database in the output directory) safe for SQLite to open.

    Refuses a link, a non-regular file or a hard-linked file at the database or at its journal
    names (``-wal``, ``-shm``, ``-journal``), and creates a missing database as an empty regular
    file without following a link.

    Raises:
        OutputDirError: an unsafe name (each named).
    """
    found = [
        p
        for suffix in ("", *SQLITE_JOURNALS)
        if (p := problem(path.with_name(path.name + suffix), directory=False)) is not None
    ]
    if found:
        raise OutputDirError("; ".join(found) + f"; {_ADVICE}")
    os.close(open_fd(path.parent, path.name, os.O_RDWR | os.O_CREAT))


def unlink(root: Path, rel: str | PurePosixPath) -> None:
    """Remove ``root/rel`` (a link there is removed, never followed); a missing file is fine."""
    rel = PurePosixPath(rel)
    with directory(root, rel.parent) as parent, contextlib.suppress(FileNotFoundError):
        os.unlink(rel.name, dir_fd=parent)


def is_regular(root: Path, rel: str | PurePosixPath) -> bool:
    """Whether ``root/rel`` is a regular file reached without following a link below ``root``."""
    rel = PurePosixPath(rel)
    try:
        with directory(root, rel.parent) as parent:
            info = os.stat(rel.name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode)


def append_whole(fd: int, data: bytes) -> None:
    """Append ``data`` to the file open at ``fd``, whole or not at all.

    The bytes go straight to the descriptor (a Python-side buffer that failed to flush would
    write them again later), and a write that fails part way (a full disk) is cut back to
    where it started, so no torn record is left between whole ones.

    Raises:
        OSError: the write failed; the file is as it was.
    """
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, start)
        raise
