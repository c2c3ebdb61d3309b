"""An exclusive lock on an output directory, so two runs never write the same files."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from oafetch import outdir
from oafetch.errors import OutputDirLocked


class DirLock:
    """``<dir>/.oafetch.lock``, held with ``flock`` while a run lives (freed on exit or kill).

    Opened with ``O_NOFOLLOW`` (:func:`oafetch.outdir.open_fd`), so the pid written into it never
    truncates a file a planted link points at.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / outdir.LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or fail at once.

        Raises:
            OutputDirLocked: another process holds the lock (its pid is in the message).
            OutputDirError: the lock file is a link, not a regular file, or hard-linked.
        """
        fd = outdir.open_fd(self.directory, outdir.LOCK, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputDirLocked(
                f"output directory {self.path.parent} is in use by pid {holder}; wait for that "
                "run to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd = None
