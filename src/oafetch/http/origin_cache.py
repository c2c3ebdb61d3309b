"""Per-origin files (robots.txt, tdmrep.json): fetched by one thread, awaited without a slot.

The first thread that needs an origin's file fetches it while the others needing the same origin
wait for that fetch instead of asking the host again. The fetch may give its worker slot back
while it waits for a rate slot (``waiting.py``), so a thread waiting for it must not hold a slot
of its own: were every slot held by such waiters, the fetcher could never take one back. A
waiter therefore gives its slot back before it blocks (and stops waiting when the run is
cancelled). See "Locks and slots" in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from oafetch import waiting
from oafetch.errors import FetchError
from oafetch.tokens import Reason

_POLL_S = 0.25  # how often a thread waiting for another's fetch looks at the cancel event


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased: the key of its origin's files."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class Expiring(Protocol):
    @property
    def expires(self) -> float:
        """The clock reading after which the entry is fetched again."""
        ...


E = TypeVar("E", bound=Expiring)


class OriginCache(Generic[E]):
    """One entry per origin, loaded by ``load(origin)`` on first need and after it expires."""

    def __init__(
        self,
        load: Callable[[str], E],
        *,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        cancel: threading.Event | None = None,
    ) -> None:
        self._load = load
        self._what = what  # names the file in the cancelled error
        self._clock = clock
        self._cancel = cancel or threading.Event()
        self._lock = threading.Lock()
        self._entries: dict[str, E] = {}
        self._origin_locks: dict[str, threading.Lock] = {}

    def get(self, origin: str) -> E:
        """``origin``'s entry, fetched here or awaited from the thread fetching it.

        Raises:
            FetchError: the run was cancelled while waiting (``cancelled``).
        """
        with self._lock:
            entry = self._fresh(origin)
            if entry is not None:
                return entry
            origin_lock = self._origin_locks.setdefault(origin, threading.Lock())
        self._acquire(origin_lock)
        try:
            with self._lock:  # another thread may have fetched it while we waited
                entry = self._fresh(origin)
            if entry is not None:
                return entry
            entry = self._load(origin)
            with self._lock:
                self._entries[origin] = entry
            return entry
        finally:
            origin_lock.release()

    def _fresh(self, origin: str) -> E | None:
        entry = self._entries.get(origin)
        return entry if entry is not None and entry.expires > self._clock() else None

    def _acquire(self, origin_lock: threading.Lock) -> None:
        """Take ``origin_lock``; while another thread holds it, wait without a worker slot."""
        if origin_lock.acquire(blocking=False):
            return
        with waiting.idle():
            while not origin_lock.acquire(timeout=_POLL_S):
                if self._cancel.is_set():
                    raise FetchError(Reason.CANCELLED, f"run interrupted waiting for {self._what}")
