"""Server faults on loopback: throttling storms, flapping hosts, broken, slow and lying bodies,
compression bombs, redirect loops and bad certificates. Each ends with a specific reason token,
no file at a final path and no temp file left behind.

Time bounds are generous on purpose (true on a machine 10x slower): what they catch is a wait
that never ends (a day-long Retry-After, a server that drips or never answers), not speed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import (
    RawServer,
    drip,
    endless,
    fetch_one,
    gzip_bomb,
    https_url,
    long_length_then_hang,
    offline,
    quick_loopback,
    raw_servers,
    reset_mid_body,
    stored_files,
    tls_server,
)
from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Outcome, Reason
from oafetch.errors import FetchError
from oafetch.http.client import HttpClient


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    yield from raw_servers()


def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


def no_leftovers(tmp_path: Path) -> None:
    assert not stored_files(out_dir(tmp_path)), "nothing may be stored"
    assert not list(out_dir(tmp_path).rglob("*.part-*")), "no temp file may be left"


# -- throttling ------------------------------------------------------------------------------------


def test_huge_retry_after_is_not_slept_on_the_work_fails_fast_as_throttled(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/storm.pdf"] = lambda h: h.reply(
        429, b"slow down", "text/plain", {"Retry-After": "86400"}
    )
    started = time.monotonic()
    result = fetch_one(make_config, server.url("/storm.pdf"))
    assert result.reason is Reason.THROTTLED and result.outcome is not Outcome.SUCCESS
    assert time.monotonic() - started < 30, "a day-long Retry-After is beyond the cap: no wait"
    assert len(server.hits("/storm.pdf")) == 1, "a wait beyond the cap is not retried"
    no_leftovers(tmp_path)


def test_a_429_storm_does_not_block_the_pool_other_works_finish(
    server: Loopback, make_config: Any
) -> None:
    for i in range(4):
        server.routes[f"/storm{i}.pdf"] = lambda h: h.reply(
            429, b"", "text/plain", {"Retry-After": "100000"}
        )
    for i in range(12):
        server.routes[f"/ok{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(2000, seed=i), "application/pdf"
        )
    urls = [server.url(f"/storm{i}.pdf") for i in range(4)]
    urls += [server.url(f"/ok{i}.pdf") for i in range(12)]
    started = time.monotonic()
    with Downloader(make_config(**offline({"workers": 2})), resume=False) as dl:
        results = {r.work_id: r for r in dl.run(urls)}
    assert time.monotonic() - started < 60
    storm = [r for w, r in results.items() if "storm" in w]
    ok = [r for w, r in results.items() if "/ok" in w]
    assert len(storm) == 4 and all(r.reason is Reason.THROTTLED for r in storm)
    assert len(ok) == 12 and all(r.outcome is Outcome.SUCCESS for r in ok)


@pytest.mark.slow
def test_a_worker_waiting_out_a_retry_after_gives_its_slot_to_other_works(
    server: Loopback, make_config: Any
) -> None:
    server.routes["/wait.pdf"] = lambda h: h.reply(429, b"", "text/plain", {"Retry-After": "2"})
    for i in range(8):
        server.routes[f"/ok{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(2000, seed=i), "application/pdf"
        )
    urls = [server.url("/wait.pdf")] + [server.url(f"/ok{i}.pdf") for i in range(8)]
    config = make_config(
        **offline({"workers": 1, "retry": {"attempts": 2}, "politeness": {"max_deferrals": 0}})
    )
    finished: dict[str, float] = {}
    started = time.monotonic()
    with Downloader(config, resume=False) as dl:
        for result in dl.run(urls):
            finished[result.work_id] = time.monotonic() - started
            if "/ok" in result.work_id:
                assert result.outcome is Outcome.SUCCESS
    wait_done = next(t for w, t in finished.items() if "wait" in w)
    ok_done = max(t for w, t in finished.items() if "/ok" in w)
    assert wait_done >= 1.9, "the 2 s Retry-After was honoured"
    assert ok_done < wait_done, "one worker, yet every other work finished during the wait"


# -- breakers --------------------------------------------------------------------------------------


def _transitions(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return list(
            conn.execute("SELECT host, old_state, new_state FROM breaker_transitions ORDER BY ts")
        )


@pytest.mark.slow
def test_breaker_opens_half_opens_reopens_closes_and_every_transition_is_recorded(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    state = {"up": False}

    def flappy(h: Handler) -> None:
        if state["up"]:
            h.reply(200, pdf_bytes(3000, seed=len(server.log)), "application/pdf")
        else:
            h.reply(503, b"down", "text/plain")

    for name in ("a", "b", "c", "d"):
        server.routes[f"/{name}.pdf"] = flappy
    config = make_config(
        **offline(
            {
                "telemetry": {"enabled": True, "otlp_endpoint": None},
                "retry": {"attempts": 3, "backoff_initial_s": 0.0},
                "breaker": {"fail_max": 2, "reset_timeout_s": 0.5},
            }
        )
    )
    with Downloader(config, resume=False) as dl:
        first = dl.fetch(server.url("/a.pdf"))  # 503, 503 → open; the third try fails fast
        assert dl.http.breakers.state("127.0.0.1") == "open"
        sent = len(server.hits("/a.pdf"))
        fast = dl.fetch(server.url("/b.pdf"))  # open: nothing is sent
        assert fast.reason is Reason.BREAKER_OPEN and not server.hits("/b.pdf")
        time.sleep(0.6)
        probe_fails = dl.fetch(server.url("/c.pdf"))  # half-open probe → 503 → open again
        assert len(server.hits("/c.pdf")) == 1, "exactly one probe while half-open"
        assert dl.http.breakers.state("127.0.0.1") == "open"
        time.sleep(0.6)
        state["up"] = True
        recovered = dl.fetch(server.url("/d.pdf"))  # probe succeeds → closed
        assert dl.http.breakers.state("127.0.0.1") == "closed"
    assert sent == 2 and first.outcome is not Outcome.SUCCESS
    assert probe_fails.outcome is not Outcome.SUCCESS
    assert recovered.outcome is Outcome.SUCCESS
    rows = _transitions(out_dir(tmp_path) / "telemetry.sqlite")
    assert [(old, new) for host, old, new in rows if host == "127.0.0.1"] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]


def test_a_flapping_host_that_answers_every_other_time_keeps_its_breaker_closed(
    server: Loopback, make_config: Any
) -> None:
    count = {"n": 0}

    def flap(h: Handler) -> None:
        count["n"] += 1
        if count["n"] % 2:
            h.reply(503, b"down", "text/plain")
        else:
            h.reply(200, pdf_bytes(3000, seed=count["n"]), "application/pdf")

    for i in range(6):
        server.routes[f"/f{i}.pdf"] = flap
    config = make_config(
        **offline({"retry": {"attempts": 3, "backoff_initial_s": 0.0}, "breaker": {"fail_max": 2}})
    )
    with Downloader(config, resume=False) as dl:
        results = [dl.fetch(server.url(f"/f{i}.pdf")) for i in range(6)]
        assert dl.http.breakers.state("127.0.0.1") == "closed"
    assert all(r.outcome is Outcome.SUCCESS for r in results), "each 503 was retried"


# -- broken bodies ---------------------------------------------------------------------------------


def test_connection_reset_mid_body_is_retried_then_reported_and_nothing_is_kept(
    raw: Any, make_config: Any, tmp_path: Path
) -> None:
    body = pdf_bytes(200_000)
    srv: RawServer = raw(reset_mid_body(body, after=50_000))
    result = fetch_one(
        make_config, srv.url("/r.pdf"), retry={"attempts": 3}, robots={"enabled": False}
    )
    assert result.outcome is Outcome.ERROR
    assert result.reason in (Reason.SIZE_MISMATCH, Reason.CONN_ERROR), result
    assert len(srv.requests) == 3, "a reset is transient: all three attempts were made"
    no_leftovers(tmp_path)


def test_a_server_that_never_answers_times_out(raw: Any, make_config: Any, tmp_path: Path) -> None:
    from faults import never_answer

    srv: RawServer = raw(never_answer)
    started = time.monotonic()
    result = fetch_one(
        make_config,
        srv.url("/h.pdf"),
        http={"read_timeout_s": 0.3},
        retry={"attempts": 2},
        robots={"enabled": False},
    )
    assert result.reason is Reason.TIMEOUT and result.outcome is Outcome.ERROR
    assert time.monotonic() - started < 25
    assert len(srv.requests) == 2, "a timeout is retried within the attempt budget"
    no_leftovers(tmp_path)


def test_a_stalled_body_after_a_long_content_length_times_out(
    raw: Any, make_config: Any, tmp_path: Path
) -> None:
    srv: RawServer = raw(long_length_then_hang(pdf_bytes(5000)))
    result = fetch_one(
        make_config,
        srv.url("/s.pdf"),
        http={"read_timeout_s": 0.3},
        retry={"attempts": 1},
        robots={"enabled": False},
    )
    assert result.reason is Reason.TIMEOUT
    no_leftovers(tmp_path)


def test_a_slow_drip_body_is_stopped_by_the_body_deadline(
    raw: Any, make_config: Any, tmp_path: Path
) -> None:
    srv: RawServer = raw(drip(interval_s=0.05))
    started = time.monotonic()
    result = fetch_one(
        make_config,
        srv.url("/drip.pdf"),
        download={"max_body_s": 1.0},
        retry={"attempts": 3},
        robots={"enabled": False},
    )
    elapsed = time.monotonic() - started
    assert result.reason is Reason.TIMEOUT, result
    assert "1s" in result.message or "1.0s" in result.message or "deadline" in result.message
    assert elapsed < 25, f"a drip that never times out a read is still bounded ({elapsed:.1f}s)"
    assert len(srv.requests) == 1, "a body over its deadline is not fetched again"
    no_leftovers(tmp_path)


def test_a_slow_drip_is_also_bounded_by_the_works_total_budget(
    raw: Any, make_config: Any, tmp_path: Path
) -> None:
    srv: RawServer = raw(drip(interval_s=0.05))
    started = time.monotonic()
    result = fetch_one(
        make_config,
        srv.url("/drip.pdf"),
        fallback={"total_budget_s": 1.0},
        robots={"enabled": False},
    )
    assert result.reason is Reason.TIMEOUT, result
    assert time.monotonic() - started < 25
    no_leftovers(tmp_path)


def test_a_close_delimited_body_cut_short_is_truncated(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    body = pdf_bytes(30_000)

    def cut(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/pdf")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body[:12_000])
        h.close_connection = True

    server.routes["/cut.pdf"] = cut
    result = fetch_one(make_config, server.url("/cut.pdf"))
    assert result.reason is Reason.TRUNCATED and result.outcome is Outcome.ERROR
    no_leftovers(tmp_path)


def test_content_length_larger_than_the_body_is_a_size_mismatch(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    body = pdf_bytes(20_000)
    server.routes["/long.pdf"] = lambda h: h.reply(
        200, body, "application/pdf", length=len(body) + 5000
    )
    result = fetch_one(make_config, server.url("/long.pdf"))
    assert result.reason is Reason.SIZE_MISMATCH
    no_leftovers(tmp_path)


def test_content_length_smaller_than_the_body_stores_nothing_and_the_next_fetch_works(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    body = pdf_bytes(20_000)
    server.routes["/short.pdf"] = lambda h: h.reply(
        200, body, "application/pdf", length=len(body) - 3000
    )
    good = pdf_bytes(4000, seed=9)
    server.routes["/good.pdf"] = lambda h: h.reply(200, good, "application/pdf")
    config = make_config(**offline({}))
    with Downloader(config, resume=False) as dl:
        lie = dl.fetch(server.url("/short.pdf"))
        assert not stored_files(out_dir(tmp_path))
        after = dl.fetch(server.url("/good.pdf"))
    assert lie.reason is Reason.TRUNCATED, "only the announced bytes are read: no %%EOF"
    assert after.outcome is Outcome.SUCCESS and after.path is not None
    assert after.path.read_bytes() == good, "the extra bytes never leak into the next answer"


def test_zero_byte_body_is_refused(server: Loopback, make_config: Any, tmp_path: Path) -> None:
    server.routes["/zero.pdf"] = lambda h: h.reply(200, b"", "application/pdf")
    result = fetch_one(make_config, server.url("/zero.pdf"))
    assert result.outcome is Outcome.ERROR and result.reason is Reason.NOT_PDF
    no_leftovers(tmp_path)


# -- size policy -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_gzip_bomb_is_stopped_early_at_max_bytes(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    expanded = 64 * 1024 * 1024
    bomb = gzip_bomb(expanded)
    assert len(bomb) < 1024 * 1024
    server.routes["/bomb.pdf"] = lambda h: h.reply(
        200, bomb, "application/pdf", {"Content-Encoding": "gzip"}
    )
    started = time.monotonic()
    limit, step = 2_000_000, 64 * 1024
    result = fetch_one(
        make_config,
        server.url("/bomb.pdf"),
        download={"max_bytes": limit, "chunk_bytes": step},
    )
    assert result.reason is Reason.POLICY_SIZE and result.outcome is Outcome.ERROR
    assert time.monotonic() - started < 60
    attempts = (out_dir(tmp_path) / "attempts.csv").read_text().splitlines()
    written = [int(line.split(",")[9]) for line in attempts[1:] if line.split(",")[9]]
    assert written and max(written) <= limit + step, "decompression stopped at the limit"
    no_leftovers(tmp_path)


def test_an_endless_body_without_length_is_aborted_at_max_bytes(
    raw: Any, make_config: Any, tmp_path: Path
) -> None:
    srv: RawServer = raw(endless())
    result = fetch_one(
        make_config,
        srv.url("/big.pdf"),
        download={"max_bytes": 1_000_000},
        robots={"enabled": False},
    )
    assert result.reason is Reason.POLICY_SIZE
    deadline = time.monotonic() + 5
    while not srv.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.sent and srv.sent[0] < 64_000_000, "the client stopped reading, the server stopped"
    assert len(srv.requests) == 1, "a policy refusal is not retried"
    no_leftovers(tmp_path)


# -- redirects -------------------------------------------------------------------------------------


def test_a_redirect_loop_ends_as_redirect(server: Loopback, make_config: Any) -> None:
    server.routes["/loop1"] = lambda h: h.reply(302, b"", "text/plain", {"Location": "/loop2"})
    server.routes["/loop2"] = lambda h: h.reply(302, b"", "text/plain", {"Location": "/loop1"})
    result = fetch_one(make_config, server.url("/loop1"), http={"max_redirects": 5})
    assert result.reason is Reason.REDIRECT and result.outcome is Outcome.ERROR
    assert len(server.hits("/loop1")) + len(server.hits("/loop2")) <= 6 + 1


def test_an_overlong_redirect_chain_ends_as_redirect(server: Loopback, make_config: Any) -> None:
    for i in range(20):
        server.routes[f"/hop{i}"] = lambda h, i=i: h.reply(
            301, b"", "text/plain", {"Location": f"/hop{i + 1}"}
        )
    server.routes["/hop20"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    result = fetch_one(make_config, server.url("/hop0"), http={"max_redirects": 4})
    assert result.reason is Reason.REDIRECT
    assert not server.hits("/hop20")
    assert "redirect" in result.message


# -- TLS -------------------------------------------------------------------------------------------


def test_a_self_signed_certificate_is_a_tls_error_and_not_retried(
    make_config: Any, tmp_path: Path
) -> None:
    with tls_server(tmp_path) as (box, _ca):
        box.routes["/t.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
        result = fetch_one(make_config, https_url(box, "/t.pdf"), robots={"enabled": False})
        assert result.reason is Reason.TLS_ERROR and result.outcome is Outcome.ERROR
        assert "certificate" in result.message.lower() or "tls" in result.message.lower()
        assert not box.hits("/t.pdf"), "no request is sent over an unverified connection"
        # The same server is fine when verification is off: the failure was the certificate.
        control = fetch_one(
            make_config,
            https_url(box, "/t.pdf"),
            http={"verify_tls": False},
            robots={"enabled": False},
        )
        assert control.outcome is Outcome.SUCCESS


def test_a_slow_drip_api_answer_is_bounded_too(raw: Any, make_config: Any) -> None:
    srv: RawServer = raw(drip(interval_s=0.05, first=b'{"results": ['))
    config = make_config(fallback={"per_source_timeout_s": 1.0}, retry={"attempts": 1})
    started = time.monotonic()
    with HttpClient(config) as http, pytest.raises(FetchError) as caught:
        http.get_json(srv.url("/v2/10.1234/x"))
    assert caught.value.reason is Reason.TIMEOUT and "deadline" in str(caught.value)
    assert time.monotonic() - started < 25


def test_a_slow_drip_robots_txt_counts_as_unreachable(
    raw: Any, make_config: Any, tmp_path: Path
) -> None:
    srv: RawServer = raw(drip(interval_s=0.05, first=b"User-agent: *\n"))
    started = time.monotonic()
    result = fetch_one(make_config, srv.url("/paper.pdf"), fallback={"per_source_timeout_s": 1.0})
    assert result.reason is Reason.ROBOTS, "RFC 9309: unreachable robots.txt disallows"
    assert time.monotonic() - started < 25
    assert [srv.path_of(i) for i in range(len(srv.requests))] == ["/robots.txt"]
    no_leftovers(tmp_path)


def _deflate(data: bytes, wbits: int) -> bytes:
    import zlib

    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "wbits"),
    [("gzip", 31), ("x-gzip", 31), ("deflate", 15), ("deflate", -15), ("identity", 0)],
    ids=["gzip", "x-gzip", "zlib-deflate", "raw-deflate", "identity"],
)
def test_compressed_bodies_are_decoded_exactly(
    server: Loopback, make_config: Any, coding: str, wbits: int
) -> None:
    body = pdf_bytes(300_000, seed=4)
    wire = body if coding == "identity" else _deflate(body, wbits)
    server.routes["/z.pdf"] = lambda h: h.reply(
        200, wire, "application/pdf", {"Content-Encoding": coding}
    )
    result = fetch_one(make_config, server.url("/z.pdf"), download={"chunk_bytes": 4096})
    assert result.outcome is Outcome.SUCCESS and result.path is not None
    assert result.path.read_bytes() == body


def test_a_corrupt_gzip_body_is_a_download_error(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    wire = _deflate(pdf_bytes(50_000), 31)
    broken = wire[:200] + bytes(b ^ 0x5A for b in wire[200:400]) + wire[400:]
    server.routes["/bad.pdf"] = lambda h: h.reply(
        200, broken, "application/pdf", {"Content-Encoding": "gzip"}
    )
    result = fetch_one(make_config, server.url("/bad.pdf"))
    assert result.outcome is Outcome.ERROR
    assert result.reason is Reason.DOWNLOAD_ERROR and "corrupt gzip" in result.message, result
    no_leftovers(tmp_path)


@pytest.mark.slow
def test_a_gzip_bomb_from_an_api_is_refused_as_policy_size(
    server: Loopback, make_config: Any
) -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)
    server.routes["/works/x"] = lambda h: h.reply(
        200, bomb, "application/json", {"Content-Encoding": "gzip"}
    )
    with HttpClient(make_config()) as http, pytest.raises(FetchError) as caught:
        http.get_json(server.url("/works/x"))
    assert caught.value.reason is Reason.POLICY_SIZE
