"""Waits that cannot deadlock: an API and its files on one host, robots.txt behind a rate slot,
fewer workers than works. The run must end (the bound only catches a hang)."""

from __future__ import annotations

import json
import threading
from typing import Any

from loopback import Loopback, pdf_bytes
from oafetch import Downloader, Outcome

HANG_S = 120.0


def _same_host_api_and_files(server: Loopback, n: int) -> list[str]:
    """An Unpaywall-shaped API whose PDFs live on the same host, with a robots.txt."""
    dois = [f"10.5555/same.{i}" for i in range(n)]
    server.routes["/robots.txt"] = lambda h: h.reply(
        200, b"User-agent: *\nAllow: /\n", "text/plain"
    )
    for i, doi in enumerate(dois):
        record = {
            "doi": doi,
            "is_oa": True,
            "best_oa_location": {"url_for_pdf": server.url(f"/files/{i}.pdf")},
        }
        body = json.dumps(record).encode()
        server.routes[f"/v2/{doi}"] = lambda h, body=body: h.reply(200, body, "application/json")
        pdf = pdf_bytes(3000, seed=i)
        server.routes[f"/files/{i}.pdf"] = lambda h, pdf=pdf: h.reply(200, pdf, "application/pdf")
    return dois


def _run_in_thread(dl: Downloader, ids: list[str]) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def run() -> None:
        results.extend(dl.run(ids))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def _run_on_one_host(server: Loopback, make_config: Any, **config: Any) -> list[Any]:
    """Six works of :func:`_same_host_api_and_files` with two workers at 4/s; fails on a hang."""
    dois = _same_host_api_and_files(server, 6)
    dl = Downloader(
        make_config(
            workers=2,
            politeness={"enabled": True, "defer_after_s": 5.0},
            rates={"127.0.0.1": "4/s"},
            robots={"enabled": True},
            resolvers={
                "unpaywall": {"enabled": True, "base_url": server.base, "email": "t@x.test"}
            },
            fallback={"tiers": [{"name": "oa", "sources": ["unpaywall"]}]},
            **config,
        ),
        resume=False,
    )
    thread, results = _run_in_thread(dl, dois)
    thread.join(HANG_S)
    assert not thread.is_alive(), "workers blocked on an origin's lock holding their slots"
    dl.close()
    return results


def test_robots_behind_a_rate_slot_with_api_and_files_on_one_host_does_not_deadlock(
    server: Loopback, make_config: Any
) -> None:
    results = _run_on_one_host(server, make_config)
    assert [r.outcome for r in results].count(Outcome.SUCCESS) == 6
    assert len(server.hits("/robots.txt")) == 1, "one fetch of robots.txt, the rest waited"


def test_tdmrep_behind_a_rate_slot_with_api_and_files_on_one_host_does_not_deadlock(
    server: Loopback, make_config: Any
) -> None:
    """The origin's tdmrep.json is fetched by one thread behind a rate slot while the others
    wait for it: they must wait without their worker slots, as they do for robots.txt."""
    server.routes["/.well-known/tdmrep.json"] = lambda h: h.reply(
        200, b'[{"location": "/private/", "tdm-reservation": 1}]', "application/json"
    )
    results = _run_on_one_host(server, make_config, download={"tdm": True})
    assert [r.outcome for r in results].count(Outcome.SUCCESS) == 6
    assert len(server.hits("/.well-known/tdmrep.json")) == 1, "one fetch, the rest waited"
