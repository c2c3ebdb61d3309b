"""oafetch's exception tree, each error carrying its reason token.

::

    OafetchError                  every error oafetch raises on purpose
    ├── ConfigError               a bad configuration value (key, rule, value)
    ├── InputError                an identifier or input file that cannot be used
    ├── OutputDirLocked           another run holds the output directory
    ├── OutputDirError            a link (or other unsafe file) where oafetch writes in --out
    └── FetchError                one HTTP attempt or one body failed (reason token, retryable?)
        ├── BreakerOpenError      the host's circuit breaker is open: failed fast, nothing sent
        ├── RobotsDisallowed      robots.txt forbids the path
        └── ResolverError         a source answered something unusable (bad JSON, 422, error feed)

Third-party exceptions (httpx, pybreaker, json, OSError) are translated to these at one
boundary each (``oafetch.http.errors.translate`` for the network), ``raise … from exc``.
"""

from __future__ import annotations

from oafetch.tokens import Reason, Status


class OafetchError(Exception):
    """Base of every error oafetch raises on purpose."""

    reason: Reason = Reason.DOWNLOAD_ERROR


class ConfigError(OafetchError, ValueError):
    """A configuration value broke a rule; the message names the key, the rule and the value."""

    reason = Reason.BAD_INPUT


class InputError(OafetchError, ValueError):
    """An identifier or an input file oafetch cannot use."""

    reason = Reason.BAD_INPUT


class OutputDirLocked(OafetchError):
    """Another oafetch run is using the output directory."""

    reason = Reason.BAD_INPUT


class OutputDirError(OafetchError, OSError):
    """A name oafetch writes in the output directory is a link, the wrong kind of file, or has
    other hard links; the message names each and what to do.

    Also an :class:`OSError`, so a write that meets one mid-run fails like any other disk error.
    """

    reason = Reason.BAD_INPUT


class FetchError(OafetchError):
    """One HTTP attempt (request, body, verification) failed.

    Attributes:
        reason: the stable reason token.
        status: the attempt status token for ``attempts.csv``.
        http_status: the HTTP status code, when a response arrived.
        retryable: whether the retry policy may try again.
        retry_after: seconds the server asked us to wait (``Retry-After``), if any.
        url: the (redacted) URL, for messages.
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        status: Status = Status.DOWNLOAD_ERROR,
        http_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        url: str | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.url = url
        self.content_type = content_type


class BreakerOpenError(FetchError):
    """The host's breaker is open: the request failed fast without touching the network."""

    def __init__(self, host: str, remaining_s: float) -> None:
        super().__init__(
            Reason.BREAKER_OPEN,
            f"circuit breaker for {host} is open "
            + (f"(retry in {remaining_s:.1f}s)" if remaining_s > 0 else "(its probe is in flight)"),
        )
        self.host = host
        self.remaining_s = remaining_s


class RobotsDisallowed(FetchError):
    """robots.txt does not allow oafetch's User-Agent to fetch this URL."""

    def __init__(self, url: str) -> None:
        super().__init__(
            Reason.ROBOTS,
            f"robots.txt disallows {url}",
            status=Status.ROBOTS_DISALLOWED,
            url=url,
        )


class ResolverError(FetchError):
    """A source answered with something unusable (invalid JSON, an error body, a refusal)."""
