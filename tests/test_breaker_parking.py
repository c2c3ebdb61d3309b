"""A batch's works whose file host has its circuit breaker open wait for the breaker to let a
probe through (parked, no thread held) instead of failing for the run: the works of a host down
for a while are all stored once it is back; a dead host's works end after a bounded wait."""

from __future__ import annotations

import threading
import time
from typing import Any

from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Reason, fallback_state


def _down_for_a_while(server: Loopback, n: int, seconds: float) -> None:
    """``n`` files on a host that answers 503 to everything for its first ``seconds``."""
    since: list[float] = []
    lock = threading.Lock()
    for i in range(n):
        body = pdf_bytes(600 + i, seed=i)

        def route(h: Handler, body: bytes = body) -> None:
            with lock:
                if not since:
                    since.append(time.monotonic())
                down = time.monotonic() - since[0] < seconds
            if down:
                h.reply(503, b"busy", "text/plain")
            else:
                h.reply(200, body, "application/pdf")

        server.routes[f"/f{i}.pdf"] = route


def _config(make_config: Any, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "workers": 6,
        "politeness": {"enabled": True, "defer_after_s": 0.2},
        "rates": {"127.0.0.1": "1000/s"},
        "retry": {"attempts": 2, "backoff_initial_s": 0.01, "jitter_s": 0, "backoff_max_s": 0.02},
        "breaker": {"fail_max": 3, "reset_timeout_s": 1.0},
    }
    settings.update(overrides)
    return make_config(**settings)


def test_works_on_a_host_down_for_a_while_wait_for_its_breaker_and_are_all_stored(
    server: Loopback, make_config: Any
) -> None:
    n = 12
    _down_for_a_while(server, n, seconds=1.5)  # the breaker opens at once, its first probe fails
    # at once: the first 503 opens it, before any work's retry (with fail_max 3, a work whose
    # two attempts both went out before two others' 503s were counted ended as http-error on a
    # loaded machine: a retry policy's verdict, not what this test is about)
    config = _config(make_config, breaker={"fail_max": 1, "reset_timeout_s": 1.0})
    with Downloader(config) as dl:
        results = list(dl.run([server.url(f"/f{i}.pdf") for i in range(n)]))
    assert [(r.reason, r.message) for r in results if not r.ok] == []
    assert len(results) == n
    attempts = (config.out_dir / "attempts.csv").read_text()
    assert "breaker-open" in attempts, "the breaker opened and refused some works for a while"


def test_a_dead_hosts_works_end_after_a_bounded_wait(server: Loopback, make_config: Any) -> None:
    for i in range(8):
        server.routes[f"/d{i}.pdf"] = lambda h: h.reply(503, b"down", "text/plain")
    started = time.monotonic()
    with Downloader(_config(make_config)) as dl:
        results = list(dl.run([server.url(f"/d{i}.pdf") for i in range(8)]))
    elapsed = time.monotonic() - started
    assert not any(r.ok for r in results)
    assert {r.reason for r in results} <= {Reason.BREAKER_OPEN, Reason.HTTP_ERROR}
    # each work waits for the breaker at most twice (1 s each here), never for its whole budget
    assert elapsed < 60, elapsed


def test_works_wait_out_a_slow_probe_without_using_up_their_breaker_waits(
    server: Loopback, make_config: Any, monkeypatch: Any
) -> None:
    """The breaker's one probe may be long in flight (behind the host's queue, or a slow
    answer); the works meeting it wait for its verdict however often they meet it."""
    monkeypatch.setattr(fallback_state, "BREAKER_PROBE_WAIT_S", 0.05)
    n = 10
    seen: dict[str, Any] = {"failures": 0, "opened": None, "probe": False}
    lock = threading.Lock()
    for i in range(n):
        body = pdf_bytes(700 + i, seed=i)

        def route(h: Handler, body: bytes = body) -> None:
            with lock:
                if seen["failures"] < 3:  # opens the breaker (fail_max 3)
                    seen["failures"] += 1
                    seen["opened"] = time.monotonic()
                    failing, slow = True, False
                else:  # the first request well after the breaker opened is its probe
                    failing = False
                    slow = not seen["probe"] and time.monotonic() - seen["opened"] > 0.2
                    seen["probe"] = seen["probe"] or slow
            if failing:
                h.reply(503, b"busy", "text/plain")
                return
            if slow:  # in flight for some 30 of the others' probe waits
                time.sleep(1.5)
            h.reply(200, body, "application/pdf")

        server.routes[f"/s{i}.pdf"] = route
    config = _config(make_config, workers=3, breaker={"fail_max": 3, "reset_timeout_s": 0.3})
    with Downloader(config) as dl:
        results = list(dl.run([server.url(f"/s{i}.pdf") for i in range(n)]))
    assert [(r.reason, r.message) for r in results if not r.ok] == []
    assert seen["probe"], "the breaker opened and its probe was slow"


def test_a_works_candidates_on_one_host_share_one_breaker_wait() -> None:
    """A work often has several candidates on one host (the PDF and landing page each source
    lists): meeting that host's open breaker with all of them is one wait, not one per link
    (4 links used to spend the work's 3 waits at once and lose it for the run)."""
    from oafetch.errors import BreakerOpenError
    from oafetch.resolvers.base import WorkIds
    from oafetch.works import parse_work

    work = parse_work("doi:10.5555/breaker-wait")
    start = time.monotonic()
    state = fallback_state._WorkState(work, WorkIds.of(work), start + 100, 10)
    for _ in range(4):  # four links on the host, refused together
        assert state.parked_wait(BreakerOpenError("pub.test", 44.0)) == 44.0
    assert state.breaker_waits == 1
    assert 143 < state.deadline - start < 146  # moved once, by the one wait
    # its probe failed: the breaker reopened, a new opening is a second wait
    state.breaker_probes["pub.test"] -= 60
    assert state.parked_wait(BreakerOpenError("pub.test", 60.0)) == 60.0
    assert state.breaker_waits == 2
    state.breaker_probes["pub.test"] -= 60
    assert state.parked_wait(BreakerOpenError("pub.test", 60.0)) == 60.0
    state.breaker_probes["pub.test"] -= 60
    assert state.parked_wait(BreakerOpenError("pub.test", 60.0)) is None  # a 4th opening: ends
    assert state.parked_wait(BreakerOpenError("pub.test", 0.0)) is not None  # a probe in flight
