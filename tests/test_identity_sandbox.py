"""The identity check end to end on the sandbox web: works whose PDF links serve another article,
a supplement or an access notice are never stored as the work; the wrong file goes to
``quarantine/`` with its evidence and the chain goes on to the work's own PDF."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from oafetch import Downloader, Outcome
from oafetch.config import Config
from oafetch.demo import demo_config
from oafetch.results import DownloadResult
from oafetch.sandbox import Corpus, Sandbox
from oafetch.sandbox.model import Behaviour
from oafetch.telemetry import slo
from oafetch.works import parse_work

RATES = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "40/s"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    corpus = Corpus(
        seed=11,
        n_works=14,
        mix={Behaviour.WRONG_PDF: 8, Behaviour.DIRECT_OA: 3, Behaviour.REPOSITORY_ONLY: 3},
    )
    with Sandbox(corpus=corpus, rates=RATES) as sb:
        yield sb


def _run(sandbox: Sandbox, out: Path, **overrides: Any) -> dict[str, DownloadResult]:
    config = demo_config(sandbox, out, workers=4, cache={"enabled": False}, **overrides)
    with Downloader(config, resume=False) as dl:
        results = list(dl.run([w.identifier for w in sandbox.works]))
    return {r.work_id: r for r in results}


def _expected(sandbox: Sandbox) -> dict[str, Any]:
    return {parse_work(w.identifier).work_id: w for w in sandbox.works}


def test_no_wrong_pdf_is_stored_and_each_is_quarantined_with_evidence(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    results = _run(sandbox, out, telemetry={"enabled": True})
    expected = _expected(sandbox)
    wrong = [w for w in expected.values() if w.behaviour is Behaviour.WRONG_PDF]
    assert {w.variant for w in wrong} == {"other+hal", "supplement+core", "other", "notice+hal"}

    # 0 wrong-work PDFs stored as the work; every obtainable work stored byte-identical
    for work_id, work in expected.items():
        result = results[work_id]
        if work.expected_obtainable:
            assert result.outcome is Outcome.SUCCESS, (work.variant, result.message)
            assert result.sha256 == work.expected_sha256, work.variant
            assert result.identity == "match"
        else:
            assert result.outcome is not Outcome.SUCCESS, work.variant
    # each wrong-PDF work: its one wrong file quarantined, the chain moved on to the repository
    for work in wrong:
        result = results[parse_work(work.identifier).work_id]
        assert len(result.quarantined) == 1, (work.variant, result.quarantined)
        quarantined = out / result.quarantined[0]
        assert quarantined.read_bytes()[:5] == b"%PDF-"
        evidence = json.loads(quarantined.with_suffix(".json").read_text())
        assert evidence["reason"] == "identity-mismatch" and evidence["identity"] == "mismatch"
        assert evidence["expected"]["doi"].lower() == work.doi.lower()
        assert evidence["expected"]["title"] == work.title
        assert evidence["sha256"] != work.expected_sha256 and evidence["evidence"]
        if "+" in work.variant:
            # the repository's own copy, whichever source listed it first (OpenAIRE also lists
            # HAL's landing page, which links the same document)
            repository = work.variant.partition("+")[2]
            assert result.url is not None
            assert urlsplit(result.url).hostname == sandbox.host_of(f"{repository}_site")
        else:  # the only PDF anywhere was the wrong one
            assert result.outcome is Outcome.ERROR and str(result.reason) == "identity-mismatch"
            assert result.identity == "mismatch" and result.path is None
    kinds = {
        w.variant.partition("+")[0]: json.loads(
            (out / results[parse_work(w.identifier).work_id].quarantined[0])
            .with_suffix(".json")
            .read_text()
        )["evidence"]
        for w in wrong
    }
    assert "supplement" in kinds["supplement"] and "notice" in kinds["notice"]
    assert "title not printed" in kinds["other"]
    n_quarantined = len(list((out / "quarantine").glob("*.pdf")))
    assert n_quarantined == len(wrong) == len(list((out / "quarantine").glob("*.json")))
    assert not list((out / "pdf").glob("*.part-*"))

    summary = json.loads((out / "summary.json").read_text())
    stored = sum(1 for r in results.values() if r.ok)
    assert summary["identity"] == {"match": stored, "quarantined": n_quarantined}
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {row["identity"] for row in manifest if row["ok"]} == {"match"}
    assert all(row["identity_score"] is not None for row in manifest if row["ok"])
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        rows = conn.execute(
            "SELECT identity, count(*), sum(quarantined) FROM downloads GROUP BY identity"
        ).fetchall()
    by_identity = {r[0]: (r[1], r[2]) for r in rows}
    assert by_identity["match"][0] == sum(1 for r in results.values() if r.ok)
    assert sum(q for _, q in by_identity.values()) == n_quarantined
    assert by_identity["mismatch"][0] == sum(1 for w in wrong if "+" not in w.variant)

    # the SLO table's "identity mismatches per 1,000 works"
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        report = slo.evaluate_run(conn, manifest[0]["run_id"], slo.SloTargets(), out_dir=out)
        (stored,) = conn.execute("SELECT identity_mismatch_per_1k FROM run_summary").fetchone()
    sli = next(r for r in report.results if r.key == "identity_mismatch_per_1k")
    assert sli.value == pytest.approx(1000 * n_quarantined / len(expected)) == stored
    assert sli.passed is (sli.value <= 50)


def test_with_the_check_off_the_wrong_pdfs_are_stored(sandbox: Sandbox, tmp_path: Path) -> None:
    """``identity = "off"``: the links' PDFs are stored as the works (what other tools do)."""
    results = _run(sandbox, tmp_path / "out", download={"identity": "off"})
    expected = _expected(sandbox)
    wrong = [
        work_id
        for work_id, w in expected.items()
        if results[work_id].ok and results[work_id].sha256 != w.expected_sha256
    ]
    assert len(wrong) == sum(1 for w in expected.values() if w.behaviour is Behaviour.WRONG_PDF)
    assert {r.identity for r in results.values() if r.ok} == {"off"}
    assert not (tmp_path / "out" / "quarantine").exists()


def test_require_refuses_a_pdf_that_cannot_be_shown_to_be_the_work(tmp_path: Path) -> None:
    """A PDF without a text layer is stored flagged ``unknown`` under "check", refused with
    ``identity-unknown`` (and quarantined) under "require"."""
    corpus = Corpus(seed=5, n_works=2, oversized_bytes=3_000_000, mix={Behaviour.OVERSIZED: 1})
    with Sandbox(corpus=corpus, rates=RATES) as sb:
        checked = _run(sb, tmp_path / "check")
        required = _run(sb, tmp_path / "require", download={"identity": "require"})
    assert {r.identity for r in checked.values()} == {"unknown"}
    assert all(r.ok for r in checked.values())
    for result in required.values():
        assert result.outcome is Outcome.ERROR and str(result.reason) == "identity-unknown"
        assert result.identity == "unknown" and len(result.quarantined) == 1
    assert not list((tmp_path / "require" / "pdf").glob("*.pdf"))


def test_a_bad_identity_setting_names_the_key_and_the_value() -> None:
    with pytest.raises(Exception) as caught:
        Config.load(None, download={"identity": "maybe"})
    assert "identity" in str(caught.value) and "maybe" in str(caught.value)
