"""A full run over the default sandbox corpus: every obtainable work stored, correctly, politely.

This is the end-to-end check of resolvers + fallback + download + politeness against a web
whose every answer is known: yield is 100 % of what is obtainable, no HTML or challenge page is
stored as a PDF, every stored sha256 matches the sandbox's copy, no host's rate is exceeded
(server-side log), and no robots-disallowed path is ever fetched.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from oafetch import Downloader, Outcome
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox
from oafetch.works import parse_work

# Faster than the defaults, still enforced server-side and configured identically in oafetch.
RATES = {
    "unpaywall": "40/s",
    "crossref": "40/s",
    "openalex": "40/s",
    "arxiv_api": "5/s",
    "arxiv": "5/s",
    "*": "20/s",
}


@pytest.mark.slow
def test_default_corpus_full_run(tmp_path: Path) -> None:
    corpus = Corpus(seed=7)  # the default corpus: 500 works
    with Sandbox(corpus=corpus, rates=RATES, arxiv_crawl_delay=0.2) as sandbox:
        config = demo_config(
            sandbox,
            tmp_path / "out",
            workers=8,
            cache={"enabled": False},
            telemetry={"enabled": True},
        )
        with Downloader(config, resume=False) as dl:
            results = list(dl.run([w.identifier for w in sandbox.works]))
        log = sandbox.requests()
        expected = {parse_work(w.identifier).work_id: w for w in sandbox.works}
        robots_ok = sandbox.corpus.robots_allows

        assert len(results) == len(sandbox.works) >= 500
        by_id = {r.work_id: r for r in results}
        missed = [
            w.identifier
            for wid, w in expected.items()
            if w.expected_obtainable and not by_id[wid].ok
        ]
        assert not missed, f"obtainable but not stored: {missed[:10]}"
        wrong = [
            r.work_id for r in results if r.ok and r.sha256 != expected[r.work_id].expected_sha256
        ]
        assert not wrong, f"stored bytes differ from the source: {wrong[:10]}"
        unexpected = [
            r.work_id for r in results if r.ok and not expected[r.work_id].expected_obtainable
        ]
        assert not unexpected, f"stored something for works with no OA copy: {unexpected[:10]}"

        for path in (tmp_path / "out" / "pdf").glob("*.pdf"):
            head = path.read_bytes()[:8]
            assert head.startswith(b"%PDF-"), f"{path.name} is not a PDF"

        throttled = [e for e in log if e.get("throttled")]
        assert not throttled, f"{len(throttled)} requests exceeded a host's rate: {throttled[:3]}"
        disallowed = [
            e["path"]
            for e in log
            if e["path"] != "/robots.txt" and not robots_ok(e["service"], urlsplit(e["path"]).path)
        ]
        assert not disallowed, f"robots-disallowed paths fetched: {disallowed[:5]}"

        reasons = Counter(str(r.reason) for r in results if r.outcome is not Outcome.SUCCESS)
        assert "bad-response" not in reasons, reasons
