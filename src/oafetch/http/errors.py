"""The one boundary where httpx exceptions and HTTP statuses become oafetch errors."""

from __future__ import annotations

import ssl

import httpx

from oafetch.errors import FetchError
from oafetch.http.retry import RETRY_STATUSES, parse_retry_after
from oafetch.tokens import Reason, Status
from oafetch.urls import redact_url


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        text = str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in text or ("SSL" in text and "handshake" in text.lower()):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def translate(
    exc: httpx.HTTPError | httpx.InvalidURL, url: str, *, sent: bool = False
) -> FetchError:
    """Map an httpx exception to a :class:`FetchError` with its reason and retryability.

    ``sent``: the request for ``url`` was built and sent, so an invalid URL can only be a
    redirect's ``Location`` (``javascript:…``, ``data:…``) — a refused redirect, not bad input.
    """
    shown = redact_url(url)
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(Reason.TIMEOUT, f"{name} fetching {shown}", retryable=True, url=shown)
    if isinstance(exc, httpx.TooManyRedirects):
        return FetchError(Reason.REDIRECT, f"too many redirects from {shown}", url=shown)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return FetchError(
            Reason.REDIRECT, f"refused a non-HTTP(S) URL reached from {shown}: {exc}", url=shown
        )
    if isinstance(exc, httpx.InvalidURL):
        if sent:
            return FetchError(
                Reason.REDIRECT,
                f"refused an invalid redirect target from {shown}: {exc}",
                url=shown,
            )
        return FetchError(Reason.BAD_INPUT, f"invalid URL {shown}: {exc}", url=shown)
    if isinstance(exc, httpx.ConnectError) and _is_tls(exc):
        return FetchError(Reason.TLS_ERROR, f"TLS error fetching {shown}: {exc}", url=shown)
    if isinstance(exc, httpx.TransportError):
        return FetchError(
            Reason.CONN_ERROR, f"{name} fetching {shown}: {exc}", retryable=True, url=shown
        )
    return FetchError(Reason.DOWNLOAD_ERROR, f"{name} fetching {shown}: {exc}", url=shown)


def is_challenge(response: httpx.Response) -> bool:
    """A Cloudflare-style bot challenge announced by its headers (body checks live in classify)."""
    return str(response.headers.get("cf-mitigated", "")).lower() == "challenge"


def check_status(
    response: httpx.Response,
    *,
    throttle_statuses: frozenset[int] = frozenset(),
) -> None:
    """Raise the :class:`FetchError` a non-success status means; return for 2xx/304.

    ``throttle_statuses`` adds source-specific throttling codes (OpenAlex answers 403).
    """
    code = response.status_code
    if code < 400 or code == 304:
        return
    url = redact_url(str(response.request.url))
    ctype = response.headers.get("content-type")
    if is_challenge(response):
        raise FetchError(
            Reason.BOT_CHALLENGE,
            f"bot challenge (HTTP {code}, cf-mitigated) at {url}",
            status=Status.HTTP_GET,
            http_status=code,
            url=url,
            content_type=ctype,
        )
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code in RETRY_STATUSES or code in throttle_statuses:
        throttled = code == 429 or code in throttle_statuses
        raise FetchError(
            Reason.THROTTLED if throttled else Reason.HTTP_ERROR,
            f"HTTP {code} from {url}" + (f" (Retry-After {retry_after:g}s)" if retry_after else ""),
            status=Status.HTTP_GET,
            http_status=code,
            retryable=True,
            retry_after=retry_after,
            url=url,
            content_type=ctype,
        )
    if code in (404, 410):
        raise FetchError(
            Reason.NOT_FOUND,
            f"HTTP {code} from {url}",
            status=Status.HTTP_GET,
            http_status=code,
            url=url,
            content_type=ctype,
        )
    raise FetchError(
        Reason.HTTP_ERROR,
        f"HTTP {code} from {url}",
        status=Status.HTTP_GET,
        http_status=code,
        url=url,
        content_type=ctype,
    )
