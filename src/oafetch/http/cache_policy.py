"""What the HTTP cache may store, for how long, and under which key. Pure functions, no I/O.

hishel's state machine (:mod:`hishel`, RFC 9111) decides *whether* a stored answer is fresh,
stale or must be revalidated; this module holds the decisions oafetch adds around it:

* **Admission** (:func:`refusal`): never store a 429, a 5xx, a Cloudflare challenge
  (``cf-mitigated: challenge``) or a challenge *body* (:func:`is_challenge_body`), a PDF
  (artifacts are never cached), a body that is not text, nor an answer that ``Vary``-es on a
  credential header.
* **Assumed freshness** (:class:`FreshnessRules`, :func:`assume_freshness`): most scholarly APIs
  send no cache headers, which RFC 9111 would make stale at once (or heuristically fresh for
  10 % of their ``Last-Modified`` age). An answer without explicit freshness gets
  ``Cache-Control: max-age=<ttl>[, stale-while-revalidate=<s>]`` from the per-host/role rules
  before hishel sees it; explicit server headers always win.
* **Keys and credentials** (:func:`cache_url`, :func:`clean_request_headers`,
  :func:`clean_response_headers`, :func:`scrub_body`): the key and the stored request use the
  canonical URL without credential parameters (``mailto``, ``email``, ``api_key`` …); credential
  headers are never stored and e-mail addresses / known secrets are replaced by ``REDACTED``.
* **stale-while-revalidate** (:func:`serve_stale`): RFC 5861, which hishel does not implement.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

from oafetch.classify import HEAD_BYTES, TAIL_BYTES, classify
from oafetch.tokens import Kind
from oafetch.urls import REDACTED, SECRET_HEADERS, canonical_url

HeaderLists = dict[str, list[str]]

#: Headers oafetch adds to each *stored request* (never sent) for ``oafetch cache stats|purge``.
ROLE_HEADER = "x-oafetch-role"
STORED_AT_HEADER = "x-oafetch-stored-at"

#: Freshness assumed for answers without cache headers (seconds), before the user's rules.
BUILTIN_TTL_S: Mapping[str, float] = {
    "api.crossref.org/metadata": 3 * 86400.0,
    "api.openalex.org/metadata": 3 * 86400.0,
    "archive.org": 7 * 86400.0,  # also web.archive.org: a key covers its subdomains
}
#: stale-while-revalidate windows added to those answers (seconds).
BUILTIN_SWR_S: Mapping[str, float] = {
    "api.crossref.org/metadata": 180.0,
    "api.openalex.org/metadata": 180.0,
}

#: Statuses oafetch stores at all (what RFC 9111 calls heuristically cacheable, plus the
#: redirects a DOI resolver answers with). 429, 5xx and other 4xx always pass through.
STORABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 302, 307, 308, 404, 410})
NEGATIVE_STATUSES = frozenset({404, 410})
#: Request headers hishel adds for a revalidation, or a caller adds for its own conditional
#: request; neither belongs in a stored request.
CONDITIONAL_HEADERS = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"}
)
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "te", "transfer-encoding", "upgrade", "proxy-connection"}
)
_TEXT_TYPES = re.compile(r"json|xml|html|text/|javascript|x-www-form-urlencoded", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MIN_SECRET = 4


# -- freshness rules -------------------------------------------------------------------------
def is_local_host(host: str) -> bool:
    """``localhost`` or a loopback/private/link-local IP literal (no DNS lookup)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _suffixes(host: str) -> list[str]:
    """``a.b.org`` → ``["a.b.org", "b.org", "org"]`` (a rule for a domain covers subdomains)."""
    labels = host.lower().rstrip(".").split(".")
    if ":" in host or host.replace(".", "").isdigit():
        return [host.lower()]  # IP literals have no parent domains
    return [".".join(labels[i:]) for i in range(len(labels))]


def _specific(rules: Mapping[str, float], host: str, role: str) -> float | None:
    for suffix in _suffixes(host):
        for key in (f"{suffix}/{role}", suffix):
            if key in rules:
                return rules[key]
    return None


@dataclass(frozen=True)
class FreshnessRules:
    """Per-host/role freshness for answers that carry no cache headers.

    Lookup order: the user's rules (most specific host first, ``host/role`` before ``host``),
    the built-in rules, then the user's ``"*"`` / ``default_ttl_s``. A loopback or private host
    gets 0 (no assumed freshness) unless one of the user's own rules names it: a development
    server's answers change between runs.
    """

    ttl_s: Mapping[str, float] = field(default_factory=dict)
    swr_s: Mapping[str, float] = field(default_factory=dict)
    default_ttl_s: float = 86400.0
    negative_ttl_s: float = 3600.0
    builtin_ttl_s: Mapping[str, float] = field(default_factory=lambda: dict(BUILTIN_TTL_S))
    builtin_swr_s: Mapping[str, float] = field(default_factory=lambda: dict(BUILTIN_SWR_S))

    def ttl(self, host: str, role: str, status: int = 200) -> float:
        """Seconds an answer from ``host`` for ``role`` without cache headers stays fresh."""
        value = _specific(self.ttl_s, host, role)
        if value is None:
            if is_local_host(host):
                return 0.0
            value = _specific(self.builtin_ttl_s, host, role)
        if value is None:
            value = self.ttl_s.get("*", self.default_ttl_s)
        if status in NEGATIVE_STATUSES:
            value = min(value, self.negative_ttl_s)
        return value

    def swr(self, host: str, role: str) -> float:
        """The stale-while-revalidate window (seconds) added to such an answer."""
        value = _specific(self.swr_s, host, role)
        if value is None:
            if is_local_host(host):
                return 0.0
            value = _specific(self.builtin_swr_s, host, role)
        return value if value is not None else self.swr_s.get("*", 0.0)


# -- Cache-Control arithmetic ----------------------------------------------------------------
def directives(value: str | None) -> dict[str, str | None]:
    """``Cache-Control`` as ``{directive: value or None}`` (lower-case names, quotes removed)."""
    found: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, sep, arg = part.strip().partition("=")
        if name:
            found[name.strip().lower()] = arg.strip().strip('"') if sep else None
    return found


def _seconds(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name)
    return ", ".join(values) if values else None


def http_date(text: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date, or ``None`` if absent or malformed."""
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def has_explicit_freshness(headers: Mapping[str, Sequence[str]]) -> bool:
    """Whether the answer says how long it is fresh (``max-age``, ``s-maxage``, ``Expires``)."""
    cc = directives(_first(headers, "cache-control"))
    return "max-age" in cc or "s-maxage" in cc or "expires" in headers


def freshness_lifetime(headers: Mapping[str, Sequence[str]]) -> float | None:
    """Explicit freshness lifetime for a private cache (``max-age``, else ``Expires - Date``)."""
    max_age = _seconds(directives(_first(headers, "cache-control")).get("max-age"))
    if max_age is not None:
        return float(max_age)
    expires = http_date(_first(headers, "expires"))
    if "expires" in headers:
        if expires is None:
            return 0.0  # an invalid Expires means "already expired" (RFC 9111 §5.3)
        date = http_date(_first(headers, "date"))
        return expires - (date if date is not None else time.time())
    return None


def age(headers: Mapping[str, Sequence[str]], now: float) -> float:
    """Age of a stored answer: ``now - Date`` (as hishel computes it), never negative."""
    date = http_date(_first(headers, "date"))
    return max(0.0, now - date) if date is not None else 0.0


def ensure_date(headers: HeaderLists, now: float) -> HeaderLists:
    """``headers`` with a ``Date`` (hishel takes an answer without one for age 0: always fresh)."""
    if http_date(_first(headers, "date")) is None:
        headers = {**headers, "date": [formatdate(now, usegmt=True)]}
    return headers


def assume_freshness(headers: HeaderLists, *, ttl_s: float, swr_s: float) -> HeaderLists:
    """Add ``max-age`` (and ``stale-while-revalidate``) to an answer without explicit freshness.

    The server's own ``Cache-Control`` directives are kept; an answer that already states its
    freshness, or forbids storing/reuse (``no-store``, ``no-cache``), is returned unchanged.
    This replaces hishel's ``Last-Modified`` heuristic with the configured rule.
    """
    if has_explicit_freshness(headers):
        return headers
    current = _first(headers, "cache-control")
    cc = directives(current)
    if "no-store" in cc or "no-cache" in cc:
        return headers
    added = f"max-age={int(ttl_s)}"
    if swr_s > 0:
        added += f", stale-while-revalidate={int(swr_s)}"
    value = f"{current}, {added}" if current else added
    return {**headers, "cache-control": [value]}


def worth_storing(headers: Mapping[str, Sequence[str]]) -> bool:
    """Whether a stored copy could ever answer a request: fresh for a while, or revalidatable.

    An answer that is stale at once (``max-age=0``, a development server's assumed TTL of 0) and
    has no validator (``ETag``, ``Last-Modified``) would only be fetched again in full.
    """
    lifetime = freshness_lifetime(headers)
    cc = directives(_first(headers, "cache-control"))
    return bool(
        (lifetime is not None and lifetime > 0)
        or (_seconds(cc.get("stale-while-revalidate")) or 0) > 0
        or "etag" in headers
        or "last-modified" in headers
    )


def serve_stale(
    stored: Mapping[str, Sequence[str]], now: float, *, request_cache_control: str | None = None
) -> bool:
    """Whether a stale stored answer may be served while it is revalidated (RFC 5861 §3).

    True when the answer carries ``stale-while-revalidate=N``, is stale by less than ``N``
    seconds, and neither it (``no-cache``, ``must-revalidate``) nor the request (``no-cache``)
    demands validation first.
    """
    cc = directives(_first(stored, "cache-control"))
    window = _seconds(cc.get("stale-while-revalidate"))
    if window is None or window <= 0 or "no-cache" in cc or "must-revalidate" in cc:
        return False
    if "no-cache" in directives(request_cache_control):
        return False
    lifetime = freshness_lifetime(stored)
    if lifetime is None:
        return False
    return age(stored, now) < lifetime + window


def vary_matches(
    stored_response: Mapping[str, Sequence[str]],
    stored_request: Mapping[str, Sequence[str]],
    request: Mapping[str, Sequence[str]],
) -> bool:
    """RFC 9111 §4.1: every header the stored answer ``Vary``-es on has the same value now."""
    vary = _first(stored_response, "vary")
    if not vary:
        return True
    for name in (n.strip().lower() for n in vary.split(",")):
        if name == "*":
            return False
        if name and _first(stored_request, name) != _first(request, name):
            return False
    return True


# -- admission --------------------------------------------------------------------------------
def is_challenge_header(headers: Mapping[str, Sequence[str]]) -> bool:
    """A Cloudflare-style bot challenge announced by ``cf-mitigated: challenge``."""
    return (_first(headers, "cf-mitigated") or "").strip().lower() == "challenge"


def refusal(status: int, headers: Mapping[str, Sequence[str]], max_bytes: int) -> str | None:
    """Why an answer must not be stored, judged from its status and headers (``None``: may be).

    Called before hishel's own RFC 9111 checks (``no-store`` and the like), which still apply.
    """
    if status == 429 or status >= 500:
        return f"status {status}"
    if is_challenge_header(headers):
        return "challenge"
    if status not in STORABLE_STATUSES:
        return f"status {status}"
    ctype = _first(headers, "content-type") or ""
    if ctype and not _TEXT_TYPES.search(ctype) and status < 300:
        return f"content-type {ctype.split(';')[0]}"
    length = _seconds(_first(headers, "content-length"))
    if length is not None and length > max_bytes:
        return "too large"
    vary = {v.strip().lower() for v in (_first(headers, "vary") or "").split(",")}
    if vary & SECRET_HEADERS:
        return "varies on a credential"
    return None


def body_refusal(body: bytes) -> str | None:
    """Why a body must not be stored: a PDF (an artifact) or a bot-challenge page."""
    found = classify(body[:HEAD_BYTES], body[-TAIL_BYTES:], page=body)
    if found.kind is Kind.PDF:
        return "pdf body"
    if found.challenge:
        return "challenge body"
    return None


def is_challenge_body(body: bytes) -> bool:
    """An HTML bot wall (Cloudflare, captcha, proof-of-work …), by its bytes."""
    return body_refusal(body) == "challenge body"


# -- keys and credentials ---------------------------------------------------------------------
def cache_url(url: str, secrets: Iterable[str] = ()) -> str:
    """The URL the cache keys on and stores: canonical, no credential parameter or e-mail."""
    return scrub_text(canonical_url(url), secrets)


def cache_key(method: str, cached_url: str) -> str:
    """The storage key of a request: sha256 hex of the method and its :func:`cache_url`."""
    return hashlib.sha256(f"oafetch-v1 {method.upper()} {cached_url}".encode()).hexdigest()


def scrub_text(value: str, secrets: Iterable[str] = ()) -> str:
    """``value`` with e-mail addresses and every known secret replaced by ``REDACTED``."""
    value = _EMAIL.sub(REDACTED, value)
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            value = value.replace(secret, REDACTED).replace(quote(secret, safe=""), REDACTED)
    return value


def scrub_body(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """``body`` with every known secret (raw and URL-encoded) replaced by ``REDACTED``.

    E-mail addresses in bodies are left alone (metadata is full of authors' addresses); only the
    configured ``mailto``/keys are removed, in case an API echoes the request.
    """
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            for form in {secret, quote(secret, safe="")}:
                body = body.replace(form.encode(), REDACTED.encode())
    return body


def _clean(
    pairs: Iterable[tuple[str, str]], drop: frozenset[str], secrets: Sequence[str]
) -> HeaderLists:
    grouped: HeaderLists = {}
    for name, value in pairs:
        key = name.lower()
        if key in drop:
            continue
        grouped.setdefault(key, []).append(scrub_text(value, secrets))
    return grouped


def clean_request_headers(
    pairs: Iterable[tuple[str, str]], secrets: Sequence[str] = ()
) -> HeaderLists:
    """Request headers as the cache sees and stores them: no credential, no conditional header.

    The ``User-Agent`` keeps its shape with the mailto replaced, so ``Vary: User-Agent`` still
    compares like with like.
    """
    return _clean(pairs, SECRET_HEADERS | CONDITIONAL_HEADERS | _HOP_HEADERS, secrets)


def clean_response_headers(
    pairs: Iterable[tuple[str, str]], secrets: Sequence[str] = ()
) -> HeaderLists:
    """Response headers as stored: no ``Set-Cookie``/credential header, no hop-by-hop header."""
    return _clean(pairs, SECRET_HEADERS | _HOP_HEADERS, secrets)
