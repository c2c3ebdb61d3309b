"""Classification on real recorded payloads (tests/fixtures/real, origins in SOURCES.tsv).

Bot walls of every vendor are refused as ``bot-challenge`` wherever their markers sit; ordinary
pages that merely load a vendor's script or a captcha widget are pages; XHTML is HTML; PDFs padded
after ``%%EOF`` are whole and stored byte for byte, and the same PDFs cut short are ``truncated``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from loopback import Loopback
from oafetch import Downloader, Outcome, Reason
from oafetch.classify import HEAD_BYTES, TAIL_BYTES, TAIL_MAX, classify, pdf_ending, verdict
from oafetch.http.cache_policy import body_refusal
from oafetch.tokens import Kind

REAL = Path(__file__).parent / "fixtures" / "real"
PAGES = REAL / "pages"
PDFS = REAL / "pdf"

#: Real bot walls and who puts them up.
WALLS = {
    "cloudflare-managed-challenge-acs-2023.html": "cloudflare",
    "cloudflare-turnstile-managed-tandf-2023.html": "cloudflare",
    "cloudflare-captcha-2015.html": "cloudflare",
    "cloudflare-access-denied-1006.html": "cloudflare",
    "cloudflare-bot-fight-2021.html": "cloudflare",
    "imperva-incapsula-whoscored.html": "imperva",
    "sucuri-cloudproxy-2019.html": "sucuri",
    "perimeterx-adorama-2018.html": "perimeterx",
    "akamai-access-denied.html": "akamai",
    "datadome-captcha.html": "datadome",
}
#: Real pages of their own that load a vendor's script or a captcha widget.
PAGES_OF_THEIR_OWN = [
    "aps-landing-cloudflare-jsd.html",
    "usenix-landing-cloudflare-jsd.html",
    "projecteuclid-landing-incapsula.html",
    "wordpress-recaptcha-moritz-meyer.html",
]
PADDED_PDFS = ["pypdf-selenium-issue-177-zero-padded.pdf", "pdfjs-scan-bad-junk-padded.pdf"]


def read(path: Path) -> bytes:
    return path.read_bytes()


def as_downloaded(body: bytes) -> Any:
    """Classify ``body`` the way a download does: head and tail first, then the whole page."""
    head, tail = body[:HEAD_BYTES], body[-TAIL_BYTES:]
    found = classify(head, tail, whole=len(body) <= TAIL_BYTES)
    while found.needs_tail:
        tail = body[-found.needs_tail :]
        found = classify(head, tail, whole=len(tail) >= len(body))
    if found.kind is Kind.HTML:
        found = classify(head, tail, page=body)
    return found


def fetch(make_config: Any, url: str, **overrides: Any) -> Any:
    with Downloader(make_config(**overrides), resume=False) as dl:
        return dl.fetch(url)


def test_every_fixture_has_its_origin_recorded() -> None:
    """Each real payload names the repository, path and commit it was taken from."""
    for folder in (PAGES, PDFS):
        with (folder / "SOURCES.tsv").open(newline="") as fh:
            rows = {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}
        files = {p.name for p in folder.iterdir() if p.name != "SOURCES.tsv"}
        assert files == set(rows), folder
        for row in rows.values():
            assert row["repository"].count("/") == 1 and row["path"]
            assert len(row["commit"]) == 40, row["file"]


# -- bot walls ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "vendor"), sorted(WALLS.items()))
def test_a_real_bot_wall_is_a_challenge_naming_its_vendor(name: str, vendor: str) -> None:
    """Imperva, Sucuri, old and new Cloudflare pages, PerimeterX, Akamai, DataDome: all walls."""
    found = as_downloaded(read(PAGES / name))
    assert found.kind is Kind.HTML and found.challenge and found.wall == vendor
    decision = verdict(found, size=1, accept=("pdf",), min_pdf_bytes=1)
    assert decision.reason is Reason.BOT_CHALLENGE and vendor in decision.message


@pytest.mark.parametrize("name", sorted(WALLS))
def test_a_real_bot_wall_served_as_a_pdf_is_refused_as_bot_challenge(
    name: str, server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    """Served with 200 and application/pdf, the wall is a bot challenge, not "not-pdf"."""
    body = read(PAGES / name)
    server.routes["/paper.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch(make_config, server.url("/paper.pdf"))
    assert result.outcome is Outcome.ERROR and result.reason is Reason.BOT_CHALLENGE
    assert not list((tmp_path / "out" / "pdf").iterdir())


def test_a_real_wall_is_never_cached() -> None:
    """The cache refuses a real challenge body, and keeps a real landing page."""
    assert body_refusal(read(PAGES / "cloudflare-bot-fight-2021.html")) == "challenge body"
    assert body_refusal(read(PAGES / "aps-landing-cloudflare-jsd.html")) is None


# -- pages of their own ------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES_OF_THEIR_OWN)
def test_a_real_page_that_loads_a_vendor_script_is_not_a_wall(name: str) -> None:
    """Cloudflare's injected jsd script, Imperva's resource script, a WordPress reCAPTCHA: pages."""
    found = as_downloaded(read(PAGES / name))
    assert found.kind is Kind.HTML and not found.challenge and found.wall == ""
    decision = verdict(found, size=1, accept=("pdf",), min_pdf_bytes=1)
    assert decision.reason is Reason.NOT_PDF


def test_xhtml_with_an_xml_prolog_is_an_html_page(server: Loopback, make_config: Any) -> None:
    """A page starting ``<?xml`` and XHTML is HTML (its links are read), not a refused XML kind."""
    body = read(PAGES / "xhtml-mpimet.html")
    assert body.startswith(b"<?xml")
    found = as_downloaded(body)
    assert found.kind is Kind.HTML and not found.challenge
    server.routes["/page"] = lambda h: h.reply(200, body, "application/xhtml+xml")
    assert fetch(make_config, server.url("/page")).reason is Reason.NOT_PDF
    stored = fetch(make_config, server.url("/page"), download={"accept": ["html"]})
    assert stored.outcome is Outcome.SUCCESS and stored.path.suffix == ".html"


# -- PDFs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PADDED_PDFS)
def test_a_real_pdf_padded_after_eof_is_whole(name: str) -> None:
    """The kept 4 KiB tail is all padding: the tail grows until the end shows, and it is whole."""
    body = read(PDFS / name)
    assert b"%%EOF" not in body[-TAIL_BYTES:]
    first = classify(body[:HEAD_BYTES], body[-TAIL_BYTES:])
    assert first.kind is Kind.PDF and first.needs_tail > TAIL_BYTES and not first.pdf_complete
    assert as_downloaded(body).pdf_complete


@pytest.mark.parametrize("name", PADDED_PDFS)
def test_a_real_padded_pdf_is_stored_byte_for_byte(
    name: str, server: Loopback, make_config: Any
) -> None:
    body = read(PDFS / name)
    server.routes["/paper.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch(make_config, server.url("/paper.pdf"))
    assert result.outcome is Outcome.SUCCESS and result.reason is Reason.OK
    assert result.path is not None and result.path.read_bytes() == body


@pytest.mark.parametrize("name", PADDED_PDFS)
def test_a_real_pdf_cut_before_its_eof_is_truncated(
    name: str, server: Loopback, make_config: Any
) -> None:
    """Cut inside its padding it is still whole; cut before ``%%EOF`` it is refused."""
    body = read(PDFS / name)
    eof = body.rindex(b"%%EOF")
    assert pdf_ending(body[: eof + 5 + 100][-TAIL_MAX:], whole=True) is True
    for cut in (eof, eof - 40, eof // 2):
        assert not as_downloaded(body[:cut]).pdf_complete, cut
    server.routes["/cut.pdf"] = lambda h: h.reply(200, body[:eof], "application/pdf")
    assert fetch(make_config, server.url("/cut.pdf")).reason is Reason.TRUNCATED


def test_the_tail_read_to_find_a_pdf_end_is_bounded() -> None:
    """Past ``TAIL_MAX`` of padding the end is not looked for: the body counts as cut short."""
    body = read(PDFS / PADDED_PDFS[0])
    buried = body + b"\0" * TAIL_MAX
    found = as_downloaded(buried)
    assert found.kind is Kind.PDF and not found.pdf_complete and not found.needs_tail
