"""What a body is, by its bytes — never by Content-Type or suffix. Pure functions.

The download keeps the first ``HEAD_BYTES`` and the last ``TAIL_BYTES`` of a body while it
streams; :func:`classify` decides from those, and :func:`verdict` turns the kind into the
stored/refused decision with its reason token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oafetch.tokens import Kind, Reason

HEAD_BYTES = 8192
TAIL_BYTES = 4096

_PDF_MAGIC = b"%PDF-"
_PDF_EOF = b"%%EOF"
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|script|div|p\b)",
    re.I | re.S,
)
_XML_START = re.compile(rb"^\s*<\?xml|^\s*<(?:article|pmc-articleset|TEI|oai|rdf)\b", re.I)
_HTML_ANYWHERE = re.compile(rb"<(?:html|body|head)\b|</html>", re.I)
_CHALLENGE = re.compile(
    rb"just a moment\.\.\.|cf-browser-verification|challenge-platform|cf_chl_|/cdn-cgi/challenge"
    rb"|checking your browser|enable javascript and cookies to continue|g-recaptcha|h-captcha"
    rb"|hcaptcha|captcha-delivery|are you a robot|preparing to download|proof[- ]of[- ]work"
    rb"|ddos protection by|access denied</title>|awswaf|px-captcha",
    re.I,
)


@dataclass(frozen=True)
class Classification:
    kind: Kind
    challenge: bool = False  # an HTML bot wall (Cloudflare, captcha, proof-of-work …)
    pdf_complete: bool = False  # %PDF- head and %%EOF near the tail


def _strip_bom(head: bytes) -> bytes:
    return head[3:] if head.startswith(b"\xef\xbb\xbf") else head


def classify(head: bytes, tail: bytes) -> Classification:
    """Classify a body from its first and last bytes."""
    start = _strip_bom(head).lstrip(b"\r\n\t \x00")
    if start.startswith(_PDF_MAGIC):
        return Classification(Kind.PDF, pdf_complete=_PDF_EOF in tail)
    # A page that looks like HTML stays HTML even if it quotes "%PDF-" and "%%EOF" (a hostile
    # page could); only then may the PDF header sit after some junk (readers allow 1 KiB).
    if _HTML_START.match(start) or (
        _HTML_ANYWHERE.search(start[:2048]) and not _XML_START.match(start)
    ):
        return Classification(Kind.HTML, challenge=bool(_CHALLENGE.search(head + tail)))
    if _PDF_MAGIC in start[:1024]:
        return Classification(Kind.PDF, pdf_complete=_PDF_EOF in tail)
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
        return Verdict(False, kind, Reason.BOT_CHALLENGE, "a bot challenge page, not the document")
    if kind is Kind.PDF:
        if not found.pdf_complete:
            return Verdict(
                False, kind, Reason.TRUNCATED, "PDF has no %%EOF near its end (cut short?)"
            )
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
