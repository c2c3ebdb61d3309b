"""Politeness that holds where the server counts it: a parked work's kept slot survives a
redirect to another host, and no window of any configured length ever holds more requests than
its limit. Assertions are counts (a slow machine only spreads requests out)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from loopback import Loopback, pdf_bytes, start
from oafetch import Downloader, Outcome
from oafetch.http.ratelimit import RateLimiter
from oafetch.rates import parse_rate


@pytest.fixture
def two_hosts() -> Iterator[tuple[Loopback, Loopback]]:
    doi, publisher = start("127.0.0.1"), start("127.0.0.2")
    yield doi, publisher
    for box in (doi, publisher):
        box.server.shutdown()
        box.server.server_close()


def test_a_redirect_to_a_host_with_a_far_slot_fetches_the_doi_url_once_per_work(
    two_hosts: tuple[Loopback, Loopback], make_config: Any
) -> None:
    """doi host → publisher host one request a second: later works park holding the
    publisher's slot and resume at the hop, not at the doi URL."""
    doi, publisher = two_hosts
    n = 4
    for i in range(n):
        target = publisher.url(f"/file/{i}.pdf")
        doi.routes[f"/10.5555/r{i}"] = lambda h, t=target: h.reply(
            302, b"", "text/html", {"Location": t}
        )
        body = pdf_bytes(3000, seed=i)
        publisher.routes[f"/file/{i}.pdf"] = lambda h, b=body: h.reply(200, b, "application/pdf")
    config = make_config(
        workers=4,
        politeness={"enabled": True, "defer_after_s": 0.3},
        rates={"127.0.0.1": "50/s", "127.0.0.2": "1/s"},
        robots={"enabled": False},
    )
    with Downloader(config, resume=False) as dl:
        results = list(dl.run([doi.url(f"/10.5555/r{i}") for i in range(n)]))
    assert [r.outcome for r in results].count(Outcome.SUCCESS) == n
    for i in range(n):
        assert len(doi.hits(f"/10.5555/r{i}")) == 1, f"work {i}: the doi URL was asked again"
        assert len(publisher.hits(f"/file/{i}.pdf")) == 1


def _max_in_window(stamps: list[float], period: float) -> int:
    """The most requests any window of ``period`` seconds holds."""
    stamps = sorted(stamps)
    return (
        max(bisect.bisect_left(stamps, t + period) - i for i, t in enumerate(stamps))
        if stamps
        else 0
    )


@pytest.mark.parametrize("policy", ["5/s", "5/s, 12/3s"])
def test_no_window_of_any_configured_length_holds_more_than_its_limit(
    server: Loopback, make_config: Any, policy: str
) -> None:
    n = 16
    for i in range(n):
        server.routes[f"/p{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(2000, seed=i), "application/pdf"
        )
    config = make_config(
        politeness={"enabled": True, "defer_after_s": 60.0},
        rates={"127.0.0.1": policy},
        robots={"enabled": False},
        workers=6,
    )
    with Downloader(config, resume=False) as dl:
        results = list(dl.run([server.url(f"/p{i}.pdf") for i in range(n)]))
    assert all(r.outcome is Outcome.SUCCESS for r in results)
    stamps = [s.ts for s in server.log]
    assert len(stamps) == n
    for window in parse_rate(policy).windows:
        held = _max_in_window(stamps, window.period_s)
        assert held <= window.count, f"{held} requests in {window.period_s}s (limit {window.count})"


def test_the_gate_keeps_every_window_with_margin_for_actual_sends() -> None:
    """Slots taken late bunch up; the gate still spaces actual sends for the long window."""
    now = [0.0]
    limiter = RateLimiter(lambda _: parse_rate("5/s, 12/3s"), clock=lambda: now[0])
    sent: list[float] = []
    while len(sent) < 30:
        wait = limiter.gate("h", again=bool(sent))
        if wait > limiter.book_ahead_s:  # not due yet: ask again shortly before
            now[0] += wait - limiter.book_ahead_s / 2
            continue
        now[0] += wait  # booked: sent once due
        sent.append(now[0])
    assert _max_in_window(sent, 1.0) <= 5
    assert _max_in_window(sent, 3.0) <= 12
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.2
