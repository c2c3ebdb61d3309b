"""Is a verified PDF the requested work? Its first pages' text against what the sources said.

A body that passes verification is *a PDF*; this module asks whether it is *the work*: the
text of its first pages (pypdfium2, at most :data:`MAX_PAGES` pages and :data:`MAX_CHARS`
characters) is compared with the title, DOI and first author's family name that the sources
reported (:class:`Expected`). The verdict is one of :class:`Identity`:

* ``match`` — the DOI is printed in the text, or the title is: its fuzzy score (rapidfuzz
  ``partial_ratio`` of the title in the text, 0-100) ≥ :data:`MATCH_SCORE`, or ≥
  :data:`AUTHOR_SCORE` with the first author's family name printed or nearly all the title's
  words present;
* ``mismatch`` — the DOI is not printed and the title clearly is not there (score below
  :data:`AUTHOR_SCORE` *and* fewer than half of its words anywhere in the text: on real
  articles the own title scores 100 and another article's 45-61 with 0-50 % of its words), or
  the text opens as a supplement ("Supplementary …", "… checklist") rather than the work, or it
  is a short notice (a paywall or access page);
* ``unknown`` — no text layer (a scan), an unreadable file, nothing to compare with (no title
  and no DOI known), or a score in the grey zone between the two thresholds.

Reading is pure I/O on a local file, judging (:func:`judge`) is a pure function: tests drive it
with text. PDFium is not thread-safe, so every read holds one process-wide lock; a read costs a
few milliseconds (docs/BENCHMARKS.md) and happens once per verified PDF. Nothing here raises
for a broken file: the verdict is ``unknown``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oafetch.tokens import Identity

log = logging.getLogger(__name__)

#: Pages read from the start of the file (the title, authors and DOI are on the first).
MAX_PAGES = 2
#: Characters kept from those pages (the title is near the top; references are not wanted).
MAX_CHARS = 12_000
#: Fewer characters than this (letters and digits) means "no text layer" (a scan, an image).
MIN_TEXT = 40
#: Title score (0-100) at or above which the title is considered printed.
MATCH_SCORE = 90.0
#: Title score at or above which the title counts when the first author's name is printed too.
AUTHOR_SCORE = 75.0
#: Share of the title's words (stop words aside) below which, with a score under
#: :data:`AUTHOR_SCORE` and no DOI printed, the file is another document.
MISMATCH_COVERAGE = 0.5
#: How far into the text (normalised characters) a supplement's label is looked for.
OPENING_CHARS = 160
#: Evidence strings are cut to this many characters (manifest and telemetry rows stay small).
EVIDENCE_CHARS = 200

_PDFIUM_LOCK = threading.Lock()

# Words that open a supplement's first page (before the article's title it names).
_SUPPLEMENT = re.compile(
    r"\b(supplementary|supplemental|supporting information|electronic supplementary|"
    r"checklist|appendix|online resource)\b"
)
# Phrases of a paywall or access notice served as a PDF.
_NOTICE = re.compile(
    r"\b(purchase (this|the) article|subscribe|subscription required|access denied|"
    r"sign in to (read|access|download)|not available (to|for) download|"
    r"institutional access|rent this article)\b"
)
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "its",
        "of",
        "on",
        "or",
        "the",
        "to",
        "via",
        "with",
    ]
)
_DOI_IN_TEXT = re.compile(r"10\.\d{4,9}/[^\s\"<>]+")


@dataclass(frozen=True)
class Expected:
    """What the sources said about the work (each field ``None`` when no source said)."""

    title: str | None = None
    doi: str | None = None
    author: str | None = None  # the first author's family name

    @property
    def empty(self) -> bool:
        return not (self.title or self.doi)


@dataclass(frozen=True)
class IdentityVerdict:
    """How a file compares with the work.

    ``score`` is the title score (0-100; ``None`` when no title was known or no text read);
    ``evidence`` a short human-readable account; ``details`` what the quarantine's evidence
    file records (the matched facts and the first characters of the text).
    """

    identity: Identity
    score: float | None
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def refused(self) -> bool:
        return self.identity is Identity.MISMATCH


def normalise(text: str) -> str:
    """Lower-case ASCII-ish words: ligatures split, accents and soft hyphens dropped, line-end
    hyphenation joined, every run of non-alphanumerics one space."""
    text = unicodedata.normalize("NFKD", text.replace("\ufffe", "").replace("\xad", ""))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"-\s*[\r\n]+\s*", "", text)  # "under-\nstand" -> "understand"
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split())


def doi_printed(doi: str, lowered: str) -> bool:
    """Whether ``doi`` occurs in ``lowered`` (lower-cased text) as a whole DOI, white space
    allowed inside it (a DOI is often broken across lines): ``10.1/abc`` is not printed in
    ``10.1/abc.s001`` (a supplement's DOI) nor in ``10.1/abcd``."""
    body = r"\s*".join(re.escape(ch) for ch in doi.lower() if not ch.isspace())
    return re.search(body + r"(?![0-9a-z]|[./_-][0-9a-z])", lowered) is not None


def title_coverage(title: str, flat: str) -> float:
    """The share of a normalised title's words (stop words and 1-2 letter words aside) that
    occur anywhere in the normalised text (1.0 for a title of stop words only)."""
    words = [w for w in title.split() if len(w) > 2 and w not in _STOP_WORDS]
    if not words:
        return 1.0
    present = set(flat.split())
    return sum(w in present for w in words) / len(words)


def read_text(path: Path, *, max_pages: int = MAX_PAGES, max_chars: int = MAX_CHARS) -> str | None:
    """The text of the first ``max_pages`` pages of the PDF at ``path`` (``None``: unreadable).

    Holds the process-wide PDFium lock while reading. Never raises.
    """
    import pypdfium2 as pdfium  # imported on first use: the CLI starts without it

    parts: list[str] = []
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except Exception as exc:  # PdfiumError, OSError: a file PDFium cannot open
            log.debug("identity: cannot open %s: %s", path, exc)
            return None
        try:
            for index in range(min(max_pages, len(pdf))):
                page = pdf[index]
                textpage = page.get_textpage()
                try:
                    parts.append(textpage.get_text_bounded())
                finally:
                    textpage.close()
                    page.close()
                if sum(len(p) for p in parts) >= max_chars:
                    break
        except Exception as exc:  # a broken page: keep what was read
            log.debug("identity: cannot read %s: %s", path, exc)
        finally:
            pdf.close()
    return "\n".join(parts)[:max_chars]


def judge(text: str | None, expected: Expected) -> IdentityVerdict:
    """Compare a file's first pages' text with what the sources said (pure)."""
    from rapidfuzz import fuzz

    if text is None:
        return IdentityVerdict(Identity.UNKNOWN, None, "unreadable: PDFium could not read the file")
    flat = normalise(text)
    if sum(ch.isalnum() for ch in flat) < MIN_TEXT:
        return IdentityVerdict(Identity.UNKNOWN, None, "no text layer in the first pages")
    if expected.empty:
        return IdentityVerdict(Identity.UNKNOWN, None, "no title or DOI known to compare with")
    head = flat[:OPENING_CHARS]
    details: dict[str, Any] = {"text_head": " ".join(text.split())[:400]}
    doi_found: bool | None = None
    if expected.doi:
        lowered = text.lower()
        doi_found = doi_printed(expected.doi, lowered)
        details["doi_found"] = doi_found
        if not doi_found:
            found_dois = _DOI_IN_TEXT.findall(lowered[:3000])
            others = sorted({m.rstrip(".,;)") for m in found_dois})
            if others:
                details["other_dois"] = others[:5]
    score: float | None = None
    title_at: int | None = None  # where the title starts in the text, when it is printed
    coverage = 0.0
    title = normalise(expected.title) if expected.title else ""
    if title:
        aligned = fuzz.partial_ratio_alignment(title, flat)
        score = round(float(aligned.score), 1) if aligned is not None else 0.0
        title_at = aligned.dest_start if aligned is not None and score >= MATCH_SCORE else None
        coverage = title_coverage(title, flat)
        details["title_score"] = score
        details["title_words"] = round(coverage, 2)
    author_found: bool | None = None
    if expected.author and (family := normalise(expected.author)):
        author_found = f" {family} " in f" {flat} "
        details["author_found"] = author_found
    # A supplement or notice names the article too: judge its opening before its title.
    # A supplement opens with its label *before* the work's title; an article may mention its
    # supplementary material after its own title (a Springer first-page footnote).
    found = _SUPPLEMENT.search(head)
    if found and found[1] not in title and (title_at is None or found.start() < title_at):
        return IdentityVerdict(
            Identity.MISMATCH,
            score,
            f"opens as a supplement ({found[1]!r}), not the work",
            details,
        )
    if len(flat) < 1500 and (found := _NOTICE.search(flat)) and found[1] not in title:
        return IdentityVerdict(
            Identity.MISMATCH, score, f"a short notice ({found[1]!r}), not the work", details
        )
    if doi_found:
        return IdentityVerdict(Identity.MATCH, score, f"DOI {expected.doi} printed", details)
    if score is not None and (
        score >= MATCH_SCORE or (score >= AUTHOR_SCORE and (bool(author_found) or coverage >= 0.8))
    ):
        said = " and first author" if author_found else ""
        return IdentityVerdict(
            Identity.MATCH, score, f"title{said} printed (score {score:g})", details
        )
    if score is not None and score < AUTHOR_SCORE and coverage < MISMATCH_COVERAGE:
        other = details.get("other_dois")
        also = f"; prints DOI {other[0]}" if other else ""
        return IdentityVerdict(
            Identity.MISMATCH,
            score,
            f"title not printed (score {score:g}, {coverage:.0%} of its words)"
            + (f", DOI not printed{also}" if expected.doi else also),
            details,
        )
    if score is None:
        return IdentityVerdict(
            Identity.UNKNOWN, None, "DOI not printed and no title known", details
        )
    return IdentityVerdict(Identity.UNKNOWN, score, f"title uncertain (score {score:g})", details)


def check(path: Path, expected: Expected) -> IdentityVerdict:
    """Read ``path``'s first pages and judge them against ``expected``; never raises.

    Nothing is read when there is nothing to compare with (``unknown`` at no cost).
    """
    started = time.perf_counter()
    if expected.empty:
        verdict = IdentityVerdict(Identity.UNKNOWN, None, "no title or DOI known to compare with")
    else:
        try:
            verdict = judge(read_text(path), expected)
        except Exception as exc:  # never let a check break a download
            log.warning("identity check of %s failed: %s", path, exc)
            verdict = IdentityVerdict(Identity.UNKNOWN, None, f"check failed: {type(exc).__name__}")
    elapsed = (time.perf_counter() - started) * 1000
    evidence = verdict.evidence[:EVIDENCE_CHARS]
    return IdentityVerdict(verdict.identity, verdict.score, evidence, verdict.details, elapsed)
