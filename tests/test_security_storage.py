"""Hostile content and hostile names: nothing but a verified document is stored, nothing is
written outside the output directory, and no work's file ever replaces another's.

Bodies are judged by their bytes (HTML, challenge and captcha pages served as
``application/pdf`` are refused with their reason); file names come only from the work id,
sanitised (``Content-Disposition``, ``../``, NUL, very long and reserved names are harmless).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import CatchAll, fetch_one, files_under, offline, quick_loopback, stored_files
from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Outcome, Reason
from oafetch.storage import Storage, safe_name
from oafetch.tokens import Kind

SAFE_FILE = re.compile(r"^[A-Za-z0-9._-]+$")

PAGES: dict[str, tuple[bytes, Reason]] = {
    "html article page": (
        b"<!DOCTYPE html><html><head><title>Article</title></head><body>Abstract</body></html>",
        Reason.NOT_PDF,
    ),
    "cloudflare JS challenge": (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
        b"<script src='/cdn-cgi/challenge-platform/h/b/orchestrate/jsch/v1'></script>"
        b"</body></html>",
        Reason.BOT_CHALLENGE,
    ),
    "enable javascript wall": (
        b"<html><body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>",
        Reason.BOT_CHALLENGE,
    ),
    "recaptcha": (
        b"<html><head><script src='https://www.google.com/recaptcha/api.js'></script></head>"
        b"<body><form><div class='g-recaptcha' data-sitekey='x'></div></form></body></html>",
        Reason.BOT_CHALLENGE,
    ),
    "hcaptcha": (
        b"<html><body><div class='h-captcha' data-sitekey='y'></div>Are you a robot?</body></html>",
        Reason.BOT_CHALLENGE,
    ),
    "proof-of-work page": (
        b"<!doctype html><html><body><p>Checking your browser (proof-of-work)...</p></body></html>",
        Reason.BOT_CHALLENGE,
    ),
    "html quoting a pdf header and trailer": (
        b"<!DOCTYPE html><html><body><pre>%PDF-1.7\n1 0 obj ... trailer %%EOF</pre>"
        + b"<p>"
        + b"padding " * 300
        + b"</p></body></html>",
        Reason.NOT_PDF,
    ),
    "html after a bom and a comment": (
        b"\xef\xbb\xbf  <!-- generated --><html><body>Sign in to download</body></html>",
        Reason.NOT_PDF,
    ),
    "json error body": (b'{"error": "forbidden", "status": 403}', Reason.NOT_PDF),
    "xml served as pdf": (b"<?xml version='1.0'?><article>text</article>", Reason.POLICY_TYPE),
    "pdf without %%EOF": (pdf_bytes(5000)[:-7], Reason.TRUNCATED),
    "tiny pdf": (b"%PDF-1.4\n%%EOF\n", Reason.POLICY_SIZE),
    "zero bytes": (b"", Reason.NOT_PDF),
}


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


@pytest.mark.parametrize("name", list(PAGES))
def test_hostile_content_served_as_pdf_is_refused_with_its_reason(
    server: Loopback, make_config: Any, tmp_path: Path, name: str
) -> None:
    body, reason = PAGES[name]
    server.routes["/paper.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    result = fetch_one(make_config, server.url("/paper.pdf"))
    assert result.outcome is Outcome.ERROR and result.reason is reason, result.message
    assert not stored_files(tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*.part-*"))


def test_content_disposition_never_names_the_file(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    body = pdf_bytes(4000)
    server.routes["/d.pdf"] = lambda h: h.reply(
        200,
        body,
        "application/pdf",
        {
            "Content-Disposition": 'attachment; filename="../../../evil.pdf"; '
            "filename*=UTF-8''..%2F..%2F..%2Fevil2.pdf"
        },
    )
    result = fetch_one(make_config, server.url("/d.pdf"))
    assert result.outcome is Outcome.SUCCESS and result.path is not None
    out = tmp_path / "out"
    assert result.path.parent == out / "pdf"
    assert result.path.name == safe_name(result.work_id) + ".pdf"
    assert not [p for p in files_under(tmp_path) if "evil" in p.name]
    assert all(out in p.parents for p in files_under(tmp_path)), "nothing outside --out"


HOSTILE_PATHS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/tmp/evil.pdf",
    "/..%2f..%2f..%2fevil.pdf",
    "/a%00b.pdf",
    "/CON",
    "/NUL",
    "/aux.pdf",
    "/COM1.txt",
    "/" + "x" * 3000 + ".pdf",
    "/%C0%AE%C0%AE/%E2%80%AE.pdf",  # overlong dots, right-to-left override
    "/paper.pdf?x=../../y",
    "/a/b.pdf",
    "/a_b.pdf",
    "/a:b.pdf",
    "/A/B.pdf",
]


def test_hostile_ids_stay_inside_the_output_dir_and_never_share_a_file(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    def by_path(h: Handler) -> None:
        seed = int(hashlib.sha256(h.path.encode()).hexdigest()[:8], 16)
        h.reply(200, pdf_bytes(3000, seed=seed), "application/pdf")

    server.routes = CatchAll(by_path)
    urls = [server.base + path for path in HOSTILE_PATHS]
    with Downloader(make_config(**offline({"workers": 4})), resume=False) as dl:
        results = list(dl.run(urls))
    ok = [r for r in results if r.outcome is Outcome.SUCCESS]
    assert len(ok) == len(set(r.work_id for r in results)) == len(HOSTILE_PATHS)
    out = (tmp_path / "out").resolve()
    paths = [r.path for r in ok]
    assert len({p.name.lower() for p in paths if p}) == len(paths), "distinct, even case-folded"
    for result in ok:
        assert result.path is not None and result.path.resolve().parent == out / "pdf"
        assert SAFE_FILE.match(result.path.name) and len(result.path.name) <= 100
        assert hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256
    assert all(out in p.resolve().parents for p in files_under(tmp_path))
    assert len(stored_files(out)) == len(HOSTILE_PATHS), "no file replaced another"


def test_an_id_with_a_nul_byte_is_bad_input(make_config: Any) -> None:
    with Downloader(make_config(**offline({})), resume=False) as dl:
        [result] = list(dl.run(["http://127.0.0.1:9/a\x00b.pdf"]))
    assert result.reason is Reason.BAD_INPUT and "control characters" in result.message


HOSTILE_IDS = [
    "doi:10.1234/../../../../etc/passwd",
    "doi:10.1234/..",
    "doi:10.1234/.",
    "doi:10.1/CON",
    "doi:10.1/con",
    "doi:10.1/NUL",
    "doi:10.1/LPT1",
    "arxiv:hep-th/9901001",
    "url:http://h/" + "é" * 400,
    "doi:10.1/" + "../" * 200,
    "doi:10.1/\u202e\u0000\ud800",  # bidi override, NUL, lone surrogate
    "",
    ".",
    "..",
    "/",
    "a/b",
    "a_b",
    "a:b",
    "A/B",
]


def test_storage_keeps_every_hostile_id_in_its_folder_under_its_own_name(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    stored = []
    for number, work_id in enumerate(HOSTILE_IDS):
        body = f"%PDF-1.4 {number} %%EOF".encode()
        temp, fh = storage.open_temp(work_id)
        with fh:
            fh.write(body)
        sha = hashlib.sha256(body).hexdigest()
        stored.append(storage.publish(temp, work_id=work_id, kind=Kind.PDF, sha256=sha))
    folder = (tmp_path / "out" / "pdf").resolve()
    assert all(s.path.resolve().parent == folder for s in stored)
    assert len({s.path.name.lower() for s in stored}) == len(HOSTILE_IDS)
    assert all(SAFE_FILE.match(s.path.name) and len(s.path.name) <= 100 for s in stored)
    assert [p.read_bytes() for p in (s.path for s in stored)] == [
        f"%PDF-1.4 {n} %%EOF".encode() for n in range(len(HOSTILE_IDS))
    ]
    assert not list(folder.glob(".*part-*"))


def test_a_symlink_planted_at_the_final_path_is_replaced_not_followed(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    target = storage.target("doi:10.1/x", Kind.PDF)
    os.symlink(victim, target)
    body = b"%PDF-1.4 x %%EOF"
    temp, fh = storage.open_temp("doi:10.1/x")
    with fh:
        fh.write(body)
    stored = storage.publish(
        temp, work_id="doi:10.1/x", kind=Kind.PDF, sha256=hashlib.sha256(body).hexdigest()
    )
    assert not stored.path.is_symlink() and stored.path.read_bytes() == body
    assert victim.read_bytes() == b"precious"


def test_temp_files_a_killed_run_left_are_removed_at_the_next_start(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "pdf" / "ab").mkdir(parents=True)
    stale = [
        root / "pdf" / ".x-1234.part-deadbeef",
        root / "pdf" / ".x-1234.pdf.link-0a0b0c0d",
        root / "pdf" / "ab" / ".abcd.pdf.link-01020304",
    ]
    for path in stale:
        path.write_bytes(b"half")
    kept = root / "pdf" / "x-1234.pdf"
    kept.write_bytes(b"%PDF-1.4 whole %%EOF")
    Storage(root, fsync=False).prepare()
    assert not any(p.exists() for p in stale)
    assert kept.read_bytes() == b"%PDF-1.4 whole %%EOF"
