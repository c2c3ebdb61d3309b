"""One fetch per origin file (robots.txt, tdmrep.json), awaited by the others without a slot.

The scene of a deadlock seen in a run with ``tdm = true``: one worker slot; thread A holds it,
fetches an origin's file and gives the slot back while its request waits for a rate slot;
thread B takes the slot and needs the same origin's file. Were B to wait for A's fetch holding
the slot, A could never take it back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from oafetch import waiting
from oafetch.config import RobotsConfig
from oafetch.errors import FetchError
from oafetch.http.robots import RobotsCache
from oafetch.http.tdmrep import TdmRepCache
from oafetch.tokens import Reason

HANG_S = 60.0  # only a hang reaches it


KINDS = ["robots.txt", "tdmrep.json"]


def _cache(
    kind: str, fetch: Callable[[str], tuple[int | None, str]], cancel: threading.Event
) -> Any:
    make = RobotsCache if kind == "robots.txt" else TdmRepCache
    return make(RobotsConfig(), fetch, cancel=cancel)


def _ask(cache: Any, url: str) -> Any:
    return cache.check(url) if isinstance(cache, RobotsCache) else cache.declaration(url)


@pytest.mark.parametrize("kind", KINDS)
def test_a_thread_waiting_for_anothers_fetch_gives_its_slot_back(kind: str) -> None:
    slot = threading.Semaphore(1)
    b_holds_the_slot = threading.Event()
    fetched: list[str] = []

    def fetch(url: str) -> tuple[int | None, str]:
        fetched.append(url)
        with waiting.idle():  # the fetch waits for a rate slot
            assert b_holds_the_slot.wait(HANG_S)
        return 404, ""

    cache = _cache(kind, fetch, threading.Event())
    answers: dict[str, Any] = {}

    def a() -> None:
        with waiting.holding(slot):
            answers["a"] = _ask(cache, "https://pub.test/a.pdf")

    def b() -> None:
        with waiting.holding(slot):
            b_holds_the_slot.set()
            answers["b"] = _ask(cache, "https://pub.test/b.pdf")

    first = threading.Thread(target=a, daemon=True)
    first.start()
    while not fetched:  # A is fetching (and gave its slot back) before B starts
        threading.Event().wait(0.01)
    second = threading.Thread(target=b, daemon=True)
    second.start()
    first.join(HANG_S)
    second.join(HANG_S)
    assert not first.is_alive() and not second.is_alive(), "a waiter kept the fetcher's slot"
    assert set(answers) == {"a", "b"}
    assert len(fetched) == 1, "the second thread used the first one's fetch"
    assert slot.acquire(blocking=False), "every slot was given back"


@pytest.mark.parametrize("kind", KINDS)
def test_a_cancelled_run_stops_waiting_for_anothers_fetch(kind: str) -> None:
    release = threading.Event()
    started = threading.Event()

    def fetch(url: str) -> tuple[int | None, str]:
        started.set()
        assert release.wait(HANG_S)
        return 404, ""

    cancel = threading.Event()
    cache = _cache(kind, fetch, cancel)
    fetcher = threading.Thread(target=_ask, args=(cache, "https://pub.test/a"), daemon=True)
    fetcher.start()
    assert started.wait(HANG_S)
    errors: list[FetchError] = []

    def wait_for_it() -> None:
        try:
            _ask(cache, "https://pub.test/b")
        except FetchError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait_for_it, daemon=True)
    waiter.start()
    cancel.set()
    waiter.join(HANG_S)
    release.set()
    fetcher.join(HANG_S)
    assert not waiter.is_alive()
    assert [e.reason for e in errors] == [Reason.CANCELLED]
    assert f"run interrupted waiting for {kind}" in str(errors[0])
