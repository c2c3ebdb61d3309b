"""What a body is, by its bytes — never by Content-Type or suffix. Pure functions.

The download keeps the first ``HEAD_BYTES`` and the last ``TAIL_BYTES`` of a body while it
streams; :func:`classify` decides from those, and :func:`verdict` turns the kind into the
stored/refused decision with its reason token.

* A PDF is complete when ``%%EOF`` follows its last ``startxref``: readers ignore what comes after
  (padding, junk), so that may follow too. When the kept tail holds neither, the classification
  asks for a longer tail (``needs_tail``), at most ``TAIL_MAX`` bytes; a body whose end holds no
  ``%%EOF`` after its last ``startxref`` is ``truncated``.
* An HTML page (XHTML with its ``<?xml`` prolog included) is a bot wall or a page of its own, as
  :func:`oafetch.walls.wall` judges it from the whole page when the caller has it (``page``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oafetch.tokens import Kind, Reason
from oafetch.walls import wall

HEAD_BYTES = 8192
TAIL_BYTES = 4096
TAIL_MAX = 1024 * 1024  # the longest tail read to find a PDF's end behind its padding

_PDF_MAGIC = b"%PDF-"
_PDF_EOF = b"%%EOF"
_STARTXREF = b"startxref"
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|script|div|p\b)",
    re.I | re.S,
)
# An XML prolog (declaration, comments, processing instructions) before an XHTML document.
_XML_PROLOG = re.compile(rb"^\s*<\?xml[^>]*\?>(?:\s*<!--.*?-->|\s*<\?.*?\?>)*", re.I | re.S)
_XML_START = re.compile(rb"^\s*<\?xml|^\s*<(?:article|pmc-articleset|TEI|oai|rdf)\b", re.I)
_HTML_ANYWHERE = re.compile(rb"<(?:html|body|head)\b|</html>", re.I)


@dataclass(frozen=True)
class Classification:
    kind: Kind
    challenge: bool = False  # an HTML bot wall (Cloudflare, captcha, block page …)
    pdf_complete: bool = False  # %PDF- head and %%EOF after the last startxref
    wall: str = ""  # who walls the page off ("cloudflare", "imperva" …) when ``challenge``
    needs_tail: int = 0  # PDF: classify again with this many tail bytes to find its end


def _strip_bom(head: bytes) -> bytes:
    return head[3:] if head.startswith(b"\xef\xbb\xbf") else head


def pdf_ending(tail: bytes, *, whole: bool = False) -> bool | None:
    """Whether a PDF whose last bytes are ``tail`` ends complete.

    True when ``%%EOF`` follows the last ``startxref`` in ``tail`` (anything may follow it), or,
    with no ``startxref`` in view, when ``tail`` holds an ``%%EOF``. False when the last
    ``startxref`` has no ``%%EOF`` after it (cut short). None when ``tail`` holds neither and is
    not the whole body: the end may sit further back, behind padding.
    """
    last = tail.rfind(_STARTXREF)
    if last >= 0:
        return _PDF_EOF in tail[last:]
    if _PDF_EOF in tail:
        return True
    return False if whole else None


def _pdf(tail: bytes, whole: bool) -> Classification:
    ending = pdf_ending(tail, whole=whole or len(tail) >= TAIL_MAX)
    if ending is None:
        grow = TAIL_MAX if len(tail) >= 64 * 1024 else 64 * 1024
        return Classification(Kind.PDF, needs_tail=grow)
    return Classification(Kind.PDF, pdf_complete=ending)


def _html(head: bytes, tail: bytes, page: bytes | None) -> Classification:
    found = wall(page if page is not None else head + tail)
    return Classification(Kind.HTML, challenge=found is not None, wall=found or "")


def classify(
    head: bytes, tail: bytes, *, whole: bool = False, page: bytes | None = None
) -> Classification:
    """Classify a body from its first and last bytes.

    Args:
        head: the first bytes (``HEAD_BYTES`` are enough).
        tail: the last bytes (``TAIL_BYTES`` at first; more when ``needs_tail`` asks).
        whole: ``tail`` is the whole body, so there is nothing further back to look at.
        page: the whole body when the caller holds it, for judging an HTML page (a wall's
            markers may sit anywhere in it); without it the page is judged on ``head + tail``.
    """
    start = _strip_bom(head).lstrip(b"\r\n\t \x00")
    if start.startswith(_PDF_MAGIC):
        return _pdf(tail, whole)
    # A page that looks like HTML stays HTML even if it quotes "%PDF-" and "%%EOF" (a hostile
    # page could); only then may the PDF header sit after some junk (readers allow 1 KiB).
    prolog = _XML_PROLOG.match(start)
    after_prolog = start[prolog.end() :] if prolog else start
    if (
        _HTML_START.match(start)
        or (prolog and _HTML_START.match(after_prolog))
        or (_HTML_ANYWHERE.search(start[:2048]) and not _XML_START.match(start))
    ):
        return _html(head, tail, page)
    if _PDF_MAGIC in start[:1024]:
        return _pdf(tail, whole)
    if _XML_START.match(start):
        return Classification(Kind.XML)
    return Classification(Kind.OTHER)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    kind: Kind
    reason: Reason
    message: str


def verdict(
    found: Classification,
    *,
    size: int,
    accept: tuple[str, ...],
    min_pdf_bytes: int,
    challenge_header: bool = False,
) -> Verdict:
    """Whether a body of this classification may be stored, and why not."""
    kind = found.kind
    if challenge_header or found.challenge:
        who = f" ({found.wall})" if found.wall else ""
        return Verdict(
            False, kind, Reason.BOT_CHALLENGE, f"a bot challenge page{who}, not the document"
        )
    if kind is Kind.PDF:
        if not found.pdf_complete:
            message = "PDF has no %%EOF after its last startxref (cut short?)"
            return Verdict(False, kind, Reason.TRUNCATED, message)
        if size < min_pdf_bytes:
            return Verdict(
                False, kind, Reason.POLICY_SIZE, f"PDF of {size} bytes is below {min_pdf_bytes}"
            )
    if kind.value in accept:
        return Verdict(True, kind, Reason.OK, "ok")
    if "pdf" in accept and kind in (Kind.HTML, Kind.OTHER):
        return Verdict(False, kind, Reason.NOT_PDF, f"body is {kind.value}, not a PDF")
    return Verdict(
        False, kind, Reason.POLICY_TYPE, f"{kind.value} is not an accepted kind {accept}"
    )
