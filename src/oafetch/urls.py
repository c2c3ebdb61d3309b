"""URL canonicalisation, the ``url_hash`` and credential redaction. Pure functions.

* :func:`canonical_url` is what dedupe and ``url_hash`` see: lower-case scheme and host, no
  default port, no fragment, no credential parameters, query parameters sorted.
* :func:`redact_url` is what any output sees: the URL as fetched, with userinfo removed and the
  value of every credential parameter replaced by ``REDACTED``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"

# Query parameters that carry credentials or personal data (compared case-insensitively).
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "auth",
        "authorization",
        "email",
        "mailto",
        "sig",
        "signature",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "x-api-key",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
    }
)
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "crossref-plus-api-token",
        "cookie",
        "set-cookie",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SECRET_PAIR = re.compile(
    r"(?<![^?&;#])(" + "|".join(re.escape(p) for p in sorted(SECRET_PARAMS)) + r")=[^&;#]*", re.I
)
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _is_secret(name: str) -> bool:
    # "?a?api_key=" (a "?" too many, from sloppy joining) and "&amp;api_key=" (HTML-escaped)
    # still carry the key: judge the name after the last "?" or ";"
    return re.split(r"[?;]", name)[-1].strip().lower() in SECRET_PARAMS


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return host
    return f"{host}:{port}"


def canonical_url(url: str) -> str:
    """The canonical form of ``url`` for dedupe and hashing (never used to fetch).

    >>> canonical_url("HTTPS://Example.org:443/a%7eb?b=2&a=1&api_key=x#frag")
    'https://example.org/a~b?a=1&b=2'
    """
    # Lone surrogates cannot be percent-encoded: make them U+FFFD once, so the result is stable.
    text = url.strip().encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. "http://[::1": not a URL, but still a stable key
        return _redact_text(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not host:  # not a fetchable URL ("http:x.pdf", a bare path): a stable key as given
        return _redact_text(text)
    path = _canonical_path(parts.path) or "/"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_secret(k)
    )
    return urlunsplit((scheme, _netloc(scheme, host, port), path, urlencode(query), ""))


def _canonical_path(path: str) -> str:
    """Percent-encoding normalised once and for all (RFC 3986 §6.2.2): stray ``%`` → ``%25``,
    escapes of unreserved characters decoded, other escapes upper-cased, the rest encoded.
    Escaped delimiters (``%2F``) stay escaped: ``a%2Fb`` and ``a/b`` are different paths."""
    path = _STRAY_PERCENT.sub("%25", path)
    path = _ESCAPE.sub(
        lambda m: chr(int(m[1], 16)) if chr(int(m[1], 16)) in _UNRESERVED else f"%{m[1].upper()}",
        path,
    )
    return quote(path, safe="/:@!$&'()*+,;=-._~%")


def url_hash(url: str) -> str:
    """First 16 hex digits of sha256 of the canonical URL (what telemetry stores)."""
    return hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:16]


def redact_url(url: str) -> str:
    """``url`` with userinfo dropped and credential parameter values replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_text(url)
    if not parts.netloc and not parts.query:
        # not a URL (an identifier such as arXiv:…); still no "api_key=" pair may show
        return _SECRET_PAIR.sub(lambda m: f"{m[1]}={REDACTED}", url)
    netloc = parts.netloc.rpartition("@")[2]  # userinfo dropped; host and port as given
    fragment = _redact_text(parts.fragment)  # "#access_token=…" (OAuth implicit flow)
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, parts.path, "", fragment))
    pairs = [
        (k, REDACTED if _is_secret(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    query = urlencode(pairs, safe=":/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_text(text: str) -> str:
    """Best effort for a string that does not parse as a URL: credential pairs and emails."""
    return _EMAIL.sub(REDACTED, _SECRET_PAIR.sub(lambda m: f"{m[1]}={REDACTED}", text))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credential headers replaced by ``REDACTED``."""
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret value (keys, tokens, the mailto) replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED).replace(quote(secret, safe=""), REDACTED)
    return text


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` ('' when it has none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
