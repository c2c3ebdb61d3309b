"""URL canonicalisation, the ``url_hash`` and credential redaction. Pure functions.

* :func:`canonical_url` is what dedupe and ``url_hash`` see: w3lib's ``canonicalize_url``
  (dot segments resolved, IDNA host, percent-encoding normalised, query sorted, no fragment),
  then no default port, no userinfo and no credential parameters.
* :func:`redact_url` is what any output sees: the URL as fetched, with userinfo removed and the
  value of every credential parameter replaced by ``REDACTED``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

REDACTED = "REDACTED"

# Query parameter names that carry credentials or personal data are recognised by rule, not
# by a list of exact names: a name is split into words (separators and camelCase) and judged
# by the words it holds. Words that are credentials wherever they appear in a name …
_SECRET_FRAGMENTS = (
    "token",
    "secret",
    "passw",
    "apikey",
    "credential",
    "signature",
    "jwt",
    "session",
    "sessid",
    "bearer",
    "cookie",
    "email",
    "mailto",
    "privatekey",
    "accesskey",
    "authkey",
)
# … and short words that are credentials only as a whole word ("auth", never "author").
_SECRET_WORDS = frozenset({"key", "auth", "authorization", "sig", "pwd", "pass", "sid", "otp"})
# Kept for callers that want the common names spelled out (documentation, tests).
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "auth",
        "email",
        "mailto",
        "sig",
        "signature",
        "password",
        "secret",
        "client_secret",
        "x-amz-signature",
        "session_id",
        "jwt",
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
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Values that are credentials whatever their parameter is called: a JWT, a well-known key
# prefix, or a long random-looking string mixing upper case, lower case and digits.
_SECRET_VALUE = re.compile(
    r"^(?:eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*"
    r"|(?:sk|pk|rk)[-_](?:live|test)[-_][\w-]{8,}|sk-[\w-]{16,}"
    r"|gh[pousr]_\w{20,}|github_pat_\w{20,}|xox[abprs]-[\w-]{10,}"
    r"|AKIA[0-9A-Z]{16}|AIza[\w-]{30,}|ya29\.[\w.-]{20,})$"
)
_RANDOM_VALUE = re.compile(r"^[A-Za-z0-9_\-+/]{32,}={0,2}$")
_PAIR = re.compile(r"(?<![^?&;#\s])([\w.\-\[\]]+)=([^&;#\s]*)")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_MAX_NESTING = 3


def is_secret_name(name: str) -> bool:
    """Whether a parameter called ``name`` carries a credential or personal data.

    >>> [is_secret_name(n) for n in ("private_token", "X-Amz-Signature", "author", "apiKey")]
    [True, True, False, True]
    """
    # "?a?api_key=" (a "?" too many, from sloppy joining) and "&amp;api_key=" (HTML-escaped)
    # still carry the key: judge the name after the last "?" or ";"
    name = re.split(r"[?;]", name)[-1].strip()
    lowered = name.lower()
    squashed = re.sub(r"[^a-z0-9]", "", lowered)
    if any(fragment in squashed for fragment in _SECRET_FRAGMENTS):
        return True
    words = {w.lower() for w in _NAME_WORDS.findall(name)}
    return bool(words & _SECRET_WORDS)


def is_secret_value(value: str) -> bool:
    """Whether ``value`` looks like a credential or an email, whatever it is called."""
    value = value.strip()
    if _SECRET_VALUE.match(value) or _EMAIL.fullmatch(value):
        return True
    return bool(
        _RANDOM_VALUE.match(value)
        and re.search(r"[a-z]", value)
        and re.search(r"[A-Z]", value)
        and re.search(r"[0-9]", value)
    )


def _is_secret(name: str, value: str = "") -> bool:
    return is_secret_name(name) or (bool(value) and is_secret_value(value))


def _redact_value(value: str, depth: int = 0) -> str:
    """A parameter value with any URL, query or encoding nested inside it redacted too."""
    if depth >= _MAX_NESTING or not value:
        return value
    # A nested form is rewritten only when something in it was redacted: re-encoding a value
    # that held no secret would change it on every pass (redaction must be idempotent).
    if "://" in value or ("=" in value and ("?" in value or "&" in value)):
        inner = (
            redact_url(value, _depth=depth + 1)
            if "://" in value
            else _redact_query(value, depth + 1)
        )
        if inner.count(REDACTED) > value.count(REDACTED):
            return inner
    decoded = unquote(value)
    if decoded != value:  # percent-encoded once more: look inside, keep the encoding
        inner = _redact_value(decoded, depth + 1)
        if inner.count(REDACTED) > decoded.count(REDACTED):
            return quote(inner, safe="")
    return value


def _redact_query(query: str, depth: int = 0) -> str:
    pairs = [
        (k, REDACTED if _is_secret(k, v) else _redact_value(v, depth))
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return urlencode(pairs, safe=":/")


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return host
    return f"{host}:{port}"


def canonical_url(url: str) -> str:
    """The canonical form of ``url`` for dedupe and hashing (never used to fetch).

    Two spellings of one resource give one form: ``/a/./b/../c`` and ``/a/c``, ``bücher.de``
    and ``xn--bcher-kva.de``, ``%7e`` and ``~``, ``%2f`` and ``%2F`` (an escaped delimiter stays
    escaped), ``:443`` on https and nothing, ``?b=2&a=1`` and ``?a=1&b=2``. w3lib does the
    RFC 3986 normalisation; what a URL must never carry into a hash (userinfo, credential
    parameters) is removed after it. The same function serves every ``url_hash`` and every
    "fetched once" memory.

    >>> canonical_url("HTTPS://Example.org:443/x/../a%7eb?b=2&a=1&api_key=x#frag")
    'https://example.org/a~b?a=1&b=2'
    """
    return _canonical(url)


@functools.lru_cache(maxsize=4096)  # every stage of one request hashes the same URL
def _canonical(url: str) -> str:
    # One pass is not always a fixed point (a host IDNA refuses, "é..", is only encodable once
    # its empty labels are gone): passes repeat until the form is stable, so a key never moves.
    form = _canonical_once(url)
    for _ in range(3):
        again = _canonical_once(form)
        if again == form:
            break
        form = again
    return form


def _canonical_once(url: str) -> str:
    # Lone surrogates cannot be percent-encoded: make them U+FFFD once, so the result is stable.
    text = url.strip().encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    try:
        parts = urlsplit(text)
        if parts.hostname:
            parts = urlsplit(canonicalize_url(text, keep_blank_values=True))
    except ValueError:  # e.g. "http://[::1": not a URL, but still a stable key
        return _redact_text(text)
    except Exception:  # w3lib refused it (an odd host): the plain normalisation below
        parts = urlsplit(text)
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
        (k, _redact_value(v))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _is_secret(k, v)
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


def redact_url(url: str, *, _depth: int = 0) -> str:
    """``url`` with userinfo dropped and every credential replaced by ``REDACTED``.

    A parameter is a credential when its name says so (:func:`is_secret_name`) or its value
    looks like one (:func:`is_secret_value`); a value that is itself a URL or a query, even
    percent-encoded again, is redacted the same way.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_text(url)
    if not parts.netloc and not parts.query:
        # not a URL (an identifier such as arXiv:…); still no "api_key=" pair may show
        return _redact_text(url)
    netloc = parts.netloc.rpartition("@")[2]  # userinfo dropped; host and port as given
    path = parts.path
    if not netloc and path.startswith("//"):
        path = "/" + path.lstrip("/")  # no host: "//x" would be read back as a host
    fragment = _redact_text(parts.fragment)  # "#access_token=…" (OAuth implicit flow)
    if not parts.query:
        return urlunsplit((parts.scheme, netloc, path, "", fragment))
    query = _redact_query(parts.query, _depth)
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def strip_secrets(url: str) -> str:
    """``url`` without userinfo and without its credential parameters (nothing left in their
    place): what may be told to a third party, such as an archive asked about the URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _redact_text(url)
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not _is_secret(k, v) and _redact_value(v) == v
        ],
        safe=":/",
    )
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """``text`` (a log line, a message) with credential pairs and emails replaced.

    >>> redact_text("Location: https://x.org/w?select=id&api_key=k123")
    'Location: https://x.org/w?select=id&api_key=REDACTED'
    """
    return _redact_text(text)


def _redact_text(text: str) -> str:
    """Best effort for a string that does not parse as a URL: credential pairs and emails."""

    def pair(match: re.Match[str]) -> str:
        name, value = match[1], match[2]
        if _is_secret(name, unquote(value)):
            return f"{name}={REDACTED}"
        return f"{name}={_redact_value(value)}"

    return _EMAIL.sub(REDACTED, _PAIR.sub(pair, text))


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
