"""Verified downloads against a real loopback server: each behaviour the foundation promises."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
from email.utils import formatdate
from pathlib import Path
from typing import Any

from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Outcome, Reason

SECRET_KEY = "sk-live-9f8e7d6c5b4a"
EMAIL = "tester@oafetch.test"


def fetch(make_config: Any, url: str, **overrides: Any) -> Any:
    with Downloader(make_config(**overrides), resume=False) as dl:
        return dl.fetch(url)


def test_pdf_is_stored_with_its_sha256(server: Loopback, make_config: Any) -> None:
    body = pdf_bytes(50_000)
    server.routes["/a.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch(make_config, server.url("/a.pdf"))
    assert result.outcome is Outcome.SUCCESS and result.reason is Reason.OK
    assert result.path is not None and result.path.suffix == ".pdf"
    assert result.path.read_bytes() == body
    assert result.sha256 == hashlib.sha256(body).hexdigest()
    assert not list(result.path.parent.glob(".*part*")), "no temp file left behind"


def test_html_served_as_pdf_is_refused_as_not_pdf(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    page = (
        b"<!DOCTYPE html><html><head><title>Article</title></head><body>Abstract only</body></html>"
    )
    server.routes["/fake.pdf"] = lambda h: h.reply(200, page, "application/pdf")
    result = fetch(make_config, server.url("/fake.pdf"))
    assert result.outcome is Outcome.ERROR and result.reason is Reason.NOT_PDF
    assert not list((tmp_path / "out" / "pdf").iterdir())


def test_challenge_page_is_refused_as_bot_challenge(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    wall = (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
        b"<body>cf_chl_opt</body></html>"
    )
    server.routes["/c.pdf"] = lambda h: h.reply(200, wall, "application/pdf")
    server.routes["/cf.pdf"] = lambda h: h.reply(
        403, wall, "text/html", {"cf-mitigated": "challenge"}
    )
    assert fetch(make_config, server.url("/c.pdf")).reason is Reason.BOT_CHALLENGE
    result = fetch(make_config, server.url("/cf.pdf"))
    assert result.reason is Reason.BOT_CHALLENGE
    assert len(server.hits("/cf.pdf")) == 1, "a challenge is never retried"
    assert not list((tmp_path / "out" / "pdf").iterdir())


def test_truncated_body_is_a_size_mismatch_and_leaves_no_file(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    body = pdf_bytes(40_000)
    server.routes["/t.pdf"] = lambda h: h.reply(
        200, body[:10_000], "application/pdf", length=len(body)
    )
    result = fetch(make_config, server.url("/t.pdf"))
    assert result.outcome is Outcome.ERROR and result.reason is Reason.SIZE_MISMATCH
    assert not list((tmp_path / "out" / "pdf").iterdir())


def test_pdf_without_eof_is_truncated(server: Loopback, make_config: Any) -> None:
    server.routes["/n.pdf"] = lambda h: h.reply(200, pdf_bytes(5000)[:-8], "application/pdf")
    assert fetch(make_config, server.url("/n.pdf")).reason is Reason.TRUNCATED


def test_oversized_declared_body_is_refused_before_reading(
    server: Loopback, make_config: Any
) -> None:
    body = pdf_bytes(30_000)
    server.routes["/big.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch(make_config, server.url("/big.pdf"), download={"max_bytes": 10_000})
    assert result.reason is Reason.POLICY_SIZE


def _throttle_then_ok(retry_after: str, body: bytes) -> Any:
    calls = {"n": 0}

    def route(h: Handler) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            h.reply(429, b"slow down", "text/plain", {"Retry-After": retry_after})
        else:
            h.reply(200, body, "application/pdf")

    return route


def test_429_with_retry_after_seconds_waits_then_succeeds(
    server: Loopback, make_config: Any
) -> None:
    body = pdf_bytes()
    server.routes["/r.pdf"] = _throttle_then_ok("2", body)
    result = fetch(make_config, server.url("/r.pdf"))
    assert result.outcome is Outcome.SUCCESS
    first, second = server.hits("/r.pdf")
    assert second.ts - first.ts >= 1.9, "the Retry-After of 2 s was honoured"


def test_429_with_http_date_retry_after_is_parsed(server: Loopback, make_config: Any) -> None:
    """The retry waits until the HTTP-date the server named (computed when it answers, so a slow
    machine only makes the wait longer, never the assertion false)."""
    import time

    body = pdf_bytes()
    retry_at: list[float] = []

    def route(h: Handler) -> None:
        if not retry_at:
            retry_at.append(float(int(time.time()) + 2))  # HTTP-dates have 1 s resolution
            h.reply(
                429,
                b"slow down",
                "text/plain",
                {"Retry-After": formatdate(retry_at[0], usegmt=True)},
            )
        else:
            h.reply(200, body, "application/pdf")

    server.routes["/d.pdf"] = route
    result = fetch(make_config, server.url("/d.pdf"))
    assert result.outcome is Outcome.SUCCESS
    _, second = server.hits("/d.pdf")
    assert second.ts >= retry_at[0] - 0.05, "the retry did not come before the named date"


def test_five_503s_open_the_breaker_and_the_next_request_fails_fast(
    server: Loopback, make_config: Any
) -> None:
    server.routes["/down.pdf"] = lambda h: h.reply(503, b"unavailable", "text/plain")
    config = make_config(
        retry={"attempts": 5, "backoff_initial_s": 0.0, "jitter_s": 0.0},
        breaker={"fail_max": 5, "reset_timeout_s": 60},
    )
    with Downloader(config, resume=False) as dl:
        first = dl.fetch(server.url("/down.pdf"))
        assert len(server.hits("/down.pdf")) == 5
        assert dl.http.breakers.state("127.0.0.1") == "open"
        second = dl.fetch(server.url("/down.pdf?again=1"))
    assert first.outcome is Outcome.ERROR
    assert second.reason is Reason.BREAKER_OPEN
    assert len(server.hits("/down.pdf")) == 5, "the open breaker sent nothing"


def test_robots_disallow_is_honoured(server: Loopback, make_config: Any) -> None:
    server.routes["/robots.txt"] = lambda h: h.reply(
        200, b"User-agent: *\nDisallow: /private/\n", "text/plain"
    )
    server.routes["/private/x.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    result = fetch(make_config, server.url("/private/x.pdf"))
    assert result.reason is Reason.ROBOTS
    assert not server.hits("/private/x.pdf")


def test_robots_5xx_is_treated_as_disallow_all(server: Loopback, make_config: Any) -> None:
    server.routes["/robots.txt"] = lambda h: h.reply(500, b"oops", "text/plain")
    server.routes["/x.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    result = fetch(make_config, server.url("/x.pdf"), retry={"attempts": 1})
    assert result.reason is Reason.ROBOTS
    assert not server.hits("/x.pdf")


def test_robots_404_allows_everything(server: Loopback, make_config: Any) -> None:
    server.routes["/x.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    assert fetch(make_config, server.url("/x.pdf")).outcome is Outcome.SUCCESS


def test_rate_limit_is_honoured_server_side(server: Loopback, make_config: Any) -> None:
    for i in range(6):
        server.routes[f"/p{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(2000, seed=i), "application/pdf"
        )
    config = make_config(politeness={"enabled": True}, rates={"127.0.0.1": "5/s"}, workers=4)
    with Downloader(config, resume=False) as dl:
        results = list(dl.run([server.url(f"/p{i}.pdf") for i in range(6)]))
    assert all(r.outcome is Outcome.SUCCESS for r in results)
    stamps = sorted(s.ts for s in server.log)  # robots.txt + 6 files, all to the same host
    # Counted where the server counts: no 1 s window holds more than 5 requests (a slow
    # machine only spreads them out), and no two came anywhere near together.
    most = max(bisect.bisect_left(stamps, t + 1.0) - i for i, t in enumerate(stamps))
    assert most <= 5, f"{most} requests within one second: {stamps}"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.1, f"requests far closer than 1/5 s apart: {gaps}"


def test_credentials_never_reach_manifest_or_attempts(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/k.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    server.routes["/missing.pdf"] = lambda h: h.reply(404, b"no", "text/plain")
    with Downloader(make_config(), resume=False) as dl:
        dl.fetch(server.url(f"/k.pdf?api_key={SECRET_KEY}&email={EMAIL}"))
        dl.fetch(server.url(f"/missing.pdf?token={SECRET_KEY}&mailto={EMAIL}"))
    out = tmp_path / "out"
    for name in ("manifest.jsonl", "attempts.csv", "summary.json"):
        text = (out / name).read_text()
        assert SECRET_KEY not in text and EMAIL not in text, name
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert "api_key=REDACTED" in rows[0]["url"]


def test_attempts_csv_header_is_exact(server: Loopback, make_config: Any, tmp_path: Path) -> None:
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    fetch(make_config, server.url("/a.pdf"))
    header = (tmp_path / "out" / "attempts.csv").read_text().splitlines()[0]
    assert header == (
        "ts,run_id,resolver,url,verb,status,http_status,content_type,elapsed_ms,"
        "bytes_written,content_length_hdr,reason"
    )


def test_manifest_rows_carry_the_contract_fields(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    fetch(make_config, server.url("/a.pdf"))
    row = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[0])
    for key in (
        "ts",
        "run_id",
        "work_id",
        "artifact_id",
        "resolver",
        "url",
        "outcome",
        "ok",
        "reason",
        "path",
        "content_type",
        "bytes",
        "sha256",
        "html_paths",
        "config_hash",
        "dry_run",
        "trace_id",
    ):
        assert key in row, key
    assert row["ok"] is True and (tmp_path / "out" / row["path"]).is_file()


def test_landing_page_links_are_followed(server: Loopback, make_config: Any) -> None:
    body = pdf_bytes(8000)
    page = (
        b'<html><head><meta name="citation_pdf_url" content="/files/paper.pdf"></head>'
        b"<body></body></html>"
    )
    server.routes["/article"] = lambda h: h.reply(200, page, "text/html")
    server.routes["/files/paper.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch(make_config, server.url("/article"))
    assert result.outcome is Outcome.SUCCESS and result.path is not None
    assert result.path.read_bytes() == body


def test_a_failing_article_pdf_never_lets_the_pages_supplement_stand_in(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    """The page lists a CONSORT checklist before its own Download PDF. While the article's PDF
    answers 503, the work fails with that 503: the checklist (a valid PDF) is never fetched."""
    checklist = pdf_bytes(6000)
    page = (
        b"<html><body><p><a href='/files/consort-checklist.pdf'>CONSORT checklist (PDF)</a></p>"
        b"<p><a href='/files/article.pdf'>Download PDF</a></p></body></html>"
    )
    server.routes["/article"] = lambda h: h.reply(200, page, "text/html")
    server.routes["/files/article.pdf"] = lambda h: h.reply(503, b"busy", "text/plain")
    server.routes["/files/consort-checklist.pdf"] = lambda h: h.reply(
        200, checklist, "application/pdf"
    )
    result = fetch(make_config, server.url("/article"))
    assert result.outcome is Outcome.ERROR and result.reason is Reason.HTTP_ERROR
    assert server.hits("/files/article.pdf"), "the article's own PDF was tried"
    assert not server.hits("/files/consort-checklist.pdf")
    assert not list((tmp_path / "out" / "pdf").iterdir())
