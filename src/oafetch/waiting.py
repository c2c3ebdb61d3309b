"""Active-worker slots that a thread gives up while it only waits.

The scheduler caps how many threads *work* at once (network, parsing, hashing) with a
semaphore; a thread holding a slot releases it for every politeness wait (a rate-limit slot, a
retry back-off, waiting for its parallel sources) and takes it back afterwards. So no slot is
ever spent sleeping while another host has capacity. Outside a scheduler (no slot held) the
helpers simply wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


def current_slot() -> threading.Semaphore | None:
    """The slot semaphore the calling thread holds, if any."""
    slot: threading.Semaphore | None = getattr(_local, "slot", None)
    return slot


@contextmanager
def holding(slot: threading.Semaphore | None) -> Iterator[None]:
    """Hold one of ``slot``'s permits for the block (no-op when ``slot`` is None)."""
    if slot is None:
        yield
        return
    slot.acquire()
    previous = getattr(_local, "slot", None)
    _local.slot = slot
    try:
        yield
    finally:
        _local.slot = previous
        slot.release()


@contextmanager
def idle() -> Iterator[None]:
    """Give the calling thread's slot back for the block (it only waits in there)."""
    slot = current_slot()
    if slot is None:
        yield
        return
    slot.release()
    _local.slot = None
    try:
        yield
    finally:
        slot.acquire()
        _local.slot = slot


def idle_wait(event: threading.Event, seconds: float) -> bool:
    """``event.wait(seconds)`` with the slot given back meanwhile; True if the event was set."""
    if seconds <= 0.002:
        return event.is_set()
    with idle():
        return event.wait(seconds)
