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
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

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


def _is_secret(name: str) -> bool:
    return name.lower() in SECRET_PARAMS


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
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    path = quote(unquote(parts.path), safe="/:@!$&'()*+,;=-._~%") or "/"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_secret(k)
    )
    return urlunsplit((scheme, _netloc(scheme, host, port), path, urlencode(query), ""))


def url_hash(url: str) -> str:
    """First 16 hex digits of sha256 of the canonical URL (what telemetry stores)."""
    return hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:16]


def redact_url(url: str) -> str:
    """``url`` with userinfo dropped and credential parameter values replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _EMAIL.sub(REDACTED, url)
    if parts.scheme.lower() not in ("http", "https", "ftp"):
        return url  # not a URL (an identifier such as arXiv:…): nothing to redact
    netloc = _netloc(parts.scheme, parts.hostname or "", port) if parts.hostname else parts.netloc
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, parts.path, "", parts.fragment))
    pairs = [
        (k, REDACTED if _is_secret(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    query = urlencode(pairs, safe=":/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


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
