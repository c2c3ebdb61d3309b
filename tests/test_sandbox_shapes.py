"""Two sandbox shapes the demo exercises: a landing page fronted by Cloudflare's injected
bot-detection script, and a PDF padded after ``%%EOF``. Both are obtainable and stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oafetch import Downloader, Outcome
from oafetch.demo import demo_config
from oafetch.sandbox import Behaviour, Corpus, Mode, Sandbox
from oafetch.sandbox.corpus import PADDING
from oafetch.works import parse_work

MIX = {"direct_oa": 1.0, "landing_only": 1.0}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    corpus = Corpus(21, n_works=24, pdf_size_range=(4_000, 30_000), mix=MIX)
    with Sandbox(corpus, rates_enforced=False, host_base=60) as box:
        yield box


def test_a_padded_work_serves_its_pdf_with_padding_after_eof(sandbox: Sandbox) -> None:
    """The file is a whole PDF followed by padding longer than a 4 KiB tail; its sha covers it."""
    work = next(w for w in sandbox.works if w.variant == "meta+padded")
    body = sandbox.corpus.pdf_bytes(work)
    assert body.endswith(b"%%EOF\n" + PADDING) and len(body) == work.size
    assert b"%%EOF" not in body[-4096:]
    assert work.expected_obtainable and work.behaviour is Behaviour.DIRECT_OA


def test_a_cloudflare_fronted_landing_page_carries_the_injected_script(sandbox: Sandbox) -> None:
    """The page is the landing page (``citation_pdf_url``) plus the script Cloudflare injects."""
    work = next(w for w in sandbox.works if w.variant == "meta+cf_script")
    page = next(p for p in work.pages if p.mode is Mode.CF_SCRIPT)
    assert "landing_page" in work.sources
    with httpx.Client(timeout=10) as client:
        answer = client.get(sandbox.url(page.host, page.path))
    assert answer.status_code == 200 and answer.headers["server"] == "cloudflare"
    assert '<meta name="citation_pdf_url"' in answer.text
    assert "/cdn-cgi/challenge-platform/scripts/jsd/main.js" in answer.text


def test_both_shapes_are_fetched_and_stored_byte_for_byte(sandbox: Sandbox, tmp_path: Path) -> None:
    """oafetch follows the fronted page's PDF link and keeps the padded PDF as served."""
    works = [w for w in sandbox.works if w.variant in ("meta+padded", "meta+cf_script")]
    assert {w.variant for w in works} == {"meta+padded", "meta+cf_script"}
    config = demo_config(sandbox, tmp_path / "out", workers=4, cache={"enabled": False})
    with Downloader(config, resume=False) as dl:
        results = {r.work_id: r for r in dl.run([w.identifier for w in works])}
    for work in works:
        result = results[parse_work(work.identifier).work_id]
        assert result.outcome is Outcome.SUCCESS, (work.variant, result.reason, result.message)
        assert result.sha256 == work.expected_sha256
        assert result.path is not None
        assert result.path.read_bytes() == sandbox.corpus.pdf_bytes(work)
