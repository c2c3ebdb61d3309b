"""The identity check: a PDF's first pages against the title, DOI and first author the sources
gave, on real article PDFs (tests/fixtures/real/pdf, origins in SOURCES.tsv) and sandbox PDFs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oafetch.identity import (
    Expected,
    check,
    doi_printed,
    judge,
    normalise,
    read_text,
)
from oafetch.sandbox import Corpus
from oafetch.sandbox.model import Behaviour, Mode
from oafetch.storage import Storage
from oafetch.tokens import DedupeAction, Identity, Kind

PDFS = Path(__file__).parent / "fixtures" / "real" / "pdf"

# file -> (title as Crossref/the page would give it, first author's family name)
REAL = {
    "grobid-submission-363.pdf": (
        "Coherence properties of quantum dot resonance fluorescence",
        "Matthiesen",
    ),
    "grobid-clef2008-qa-overview.pdf": (
        "Overview of the CLEF 2008 Multilingual Question Answering Track",
        "Forner",
    ),
    "grobid-wang-ave2008.pdf": ("Information Synthesis for Answer Validation", "Wang"),
    "grobid-arxiv-0908.0054.pdf": (
        "Ultra light bosonic dark matter and CMB",
        "Rodríguez-Montoya",
    ),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_a_real_article_matches_its_own_title(name: str) -> None:
    """Each real article's text layer prints its title: match, score 100."""
    title, author = REAL[name]
    verdict = check(PDFS / name, Expected(title=title, doi="10.9999/not-printed", author=author))
    assert verdict.identity is Identity.MATCH, verdict.evidence
    assert verdict.score is not None and verdict.score >= 90
    assert verdict.elapsed_ms > 0


def test_a_real_article_is_never_a_match_for_another_title() -> None:
    """Asked for another of the real articles, a file is never a match and nearly always a
    clear mismatch; the one grey pair (an answer-validation paper against a QA-track overview,
    half the title's words shared) stays unknown: stored, flagged, not refused."""
    verdicts = {}
    for name in REAL:
        text = read_text(PDFS / name)
        for other, (title, author) in REAL.items():
            if other != name:
                found = judge(text, Expected(title=title, doi="10.9999/x", author=author))
                verdicts[name, other] = found
    assert all(v.identity is not Identity.MATCH for v in verdicts.values())
    mismatches = [k for k, v in verdicts.items() if v.identity is Identity.MISMATCH]
    assert len(verdicts) == 12 and len(mismatches) >= 11, {
        k: v.evidence for k, v in verdicts.items()
    }
    assert all(v.score is not None and v.score < 75 for v in verdicts.values())


def test_a_scan_without_text_layer_is_unknown() -> None:
    """pdf.js's scanned page has (almost) no text: unknown, stored rather than refused."""
    verdict = check(PDFS / "pdfjs-scan-bad-junk-padded.pdf", Expected(title="Anything at all"))
    assert verdict.identity is Identity.UNKNOWN
    assert "no text layer" in verdict.evidence


def test_a_broken_or_missing_file_is_unknown_and_never_raises(tmp_path: Path) -> None:
    """A file PDFium cannot open (cut short, not a PDF, gone) gives unknown, not an exception."""
    good = (PDFS / "grobid-wang-ave2008.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(good[:400])
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 500)
    expected = Expected(title="Information Synthesis for Answer Validation")
    for path in (cut, junk, tmp_path / "missing.pdf"):
        verdict = check(path, expected)
        assert verdict.identity is Identity.UNKNOWN, path


def test_nothing_to_compare_with_is_unknown_without_reading(tmp_path: Path) -> None:
    """No title and no DOI from any source: unknown, and the file is not even opened."""
    verdict = check(tmp_path / "never-read.pdf", Expected(author="Wang"))
    assert verdict.identity is Identity.UNKNOWN
    assert "no title or DOI" in verdict.evidence


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("see doi:10.1234/abc.5 for details", True),
        ("https://doi.org/10.1234/ABC.5.", True),  # case and trailing full stop
        ("doi: 10.1234/\nabc.5 (2020)", True),  # broken across lines
        ("10.1234/abc.5.s001", False),  # the supplement's DOI
        ("10.1234/abc.51", False),  # another DOI that starts like it
        ("10.1234/abc", False),
    ],
)
def test_doi_is_found_only_as_a_whole_doi(text: str, printed: bool) -> None:
    assert doi_printed("10.1234/abc.5", text.lower()) is printed


def test_a_printed_doi_is_a_match_whatever_the_title() -> None:
    text = "A paper whose title differs from the metadata\n" + "words " * 30 + "doi:10.1/x9"
    verdict = judge(text, Expected(title="Completely other wording entirely", doi="10.1/x9"))
    assert verdict.identity is Identity.MATCH and "DOI" in verdict.evidence


def test_a_supplement_naming_the_article_is_a_mismatch() -> None:
    """A checklist titled after the article (and printing its DOI) is not the article."""
    title = "Adaptive dispersion and coherence in coral reefs"
    text = f"Supplementary Information for\n{title}\n10.1/x9\n" + "Table S1 " * 20
    verdict = judge(text, Expected(title=title, doi="10.1/x9"))
    assert verdict.identity is Identity.MISMATCH
    assert "supplement" in verdict.evidence


def test_an_article_whose_title_names_a_checklist_is_not_a_supplement() -> None:
    title = "A reporting checklist for trials of soil microbiomes"
    text = f"{title}\nA. Author\n" + "body text " * 30
    assert judge(text, Expected(title=title)).identity is Identity.MATCH


def test_normalise_joins_hyphenation_and_drops_accents_and_ligatures() -> None:
    assert normalise("Under-\nstanding ﬁeld Günter") == "understanding field gunter"


# -- sandbox PDFs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(seed=3, n_works=40, mix={Behaviour.WRONG_PDF: 1, Behaviour.DIRECT_OA: 1})


def _verdict(tmp_path: Path, data: bytes, work: object) -> Identity:
    path = tmp_path / "f.pdf"
    path.write_bytes(data)
    expected = Expected(title=work.title, doi=work.doi, author=f"Sandbox{work.index}")  # type: ignore[attr-defined]
    return check(path, expected).identity


def test_sandbox_pdfs_carry_their_title_and_doi(corpus: Corpus, tmp_path: Path) -> None:
    """Every sandbox work's own PDF matches; its wrong PDFs (another article, its supplement,
    an access notice) are mismatches."""
    for work in corpus.works:
        assert _verdict(tmp_path, corpus.pdf_bytes(work), work) is Identity.MATCH, work.index
        for mode in (Mode.WRONG_WORK, Mode.SUPPLEMENT_PDF, Mode.NOTICE_PDF):
            found = _verdict(tmp_path, corpus.wrong_bytes(work, mode), work)
            assert found is Identity.MISMATCH, (work.index, mode)


# -- the quarantine folder -----------------------------------------------------------------------


def _publish(storage: Storage, tmp_path: Path, work_id: str, data: bytes) -> object:
    temp, fh = storage.open_temp(work_id)
    with fh:
        fh.write(data)
    import hashlib

    return storage.publish(
        temp, work_id=work_id, kind=Kind.PDF, sha256=hashlib.sha256(data).hexdigest()
    )


def test_quarantine_moves_the_file_and_writes_its_evidence(tmp_path: Path) -> None:
    import hashlib

    storage = Storage(tmp_path, fsync=False)
    storage.prepare()
    data = (PDFS / "grobid-wang-ave2008.pdf").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    stored = _publish(storage, tmp_path, "doi:10.1/a", data)
    rel = storage.quarantine(
        stored,  # type: ignore[arg-type]
        work_id="doi:10.1/a",
        sha256=sha,
        evidence={"reason": "identity-mismatch"},
    )
    assert not stored.path.exists()  # type: ignore[attr-defined]
    assert rel.startswith("quarantine/") and (tmp_path / rel).read_bytes() == data
    evidence = json.loads((tmp_path / rel).with_suffix(".json").read_text())
    assert evidence == {"reason": "identity-mismatch"}
    # the same bytes for another work are stored afresh, not linked to the quarantined file
    again = _publish(storage, tmp_path, "doi:10.1/b", data)
    assert again.dedupe is DedupeAction.STORED  # type: ignore[attr-defined]


# -- the store -----------------------------------------------------------------------------------


def test_an_older_store_gains_the_identity_columns(tmp_path: Path) -> None:
    """A store made before the identity columns reads n/a for the SLI, then gains them."""
    import sqlite3

    from oafetch.telemetry import store, summary

    old = store.schema_sql()
    for column in ("identity", "identity_score", "identity_evidence", "quarantined"):
        old = "\n".join(line for line in old.splitlines() if not line.strip().startswith(column))
    old = old.replace("span_id       TEXT,\n);", "span_id       TEXT\n);")
    old = old.replace(
        "spend_usd           REAL NOT NULL DEFAULT 0,\n",
        "spend_usd           REAL NOT NULL DEFAULT 0\n",
    )
    old = "\n".join(
        line
        for line in old.splitlines()
        if "identity_mismatch_per_1k" not in line and "quarantined (not the work)" not in line
    )
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.executescript(old)
    downloads = {r[1] for r in conn.execute("PRAGMA table_info(downloads)")}
    assert "quarantined" not in downloads and "identity" not in downloads
    conn.execute("INSERT INTO downloads (run_id, ts, outcome) VALUES ('r', 1.0, 'success')")
    assert summary.compute_run_summary(conn, "r")["identity_mismatch_per_1k"] is None
    store.add_missing_columns(conn)
    downloads = {r[1] for r in conn.execute("PRAGMA table_info(downloads)")}
    assert {"identity", "identity_score", "identity_evidence", "quarantined"} <= downloads
    assert summary.compute_run_summary(conn, "r")["identity_mismatch_per_1k"] == 0.0
    conn.close()


def test_an_article_mentioning_its_supplementary_material_after_its_title_matches() -> None:
    """A first-page footnote on supplementary material after the title is not a supplement."""
    title = "Coupled folding and selection in plasma edges"
    text = f"{title}\nA. Author\nElectronic supplementary material is online.\n" + "x y " * 30
    assert judge(text, Expected(title=title)).identity is Identity.MATCH
