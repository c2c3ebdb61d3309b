"""robots.txt per origin with protego, cached with a TTL, RFC 9309 semantics.

* 2xx: parse (at most 512 KiB) and obey, for oafetch's product token.
* 4xx: no restrictions (allow all).
* 5xx or unreachable: disallow everything for ``error_ttl_s``, then ask again.
* ``Crawl-delay`` (not in RFC 9309, but widespread) is reported so the limiter can slow the host.

Applied by the client to landing and artifact fetches only, never to documented API endpoints.
One thread fetches an origin's robots.txt while the others wait for it without their worker
slots (``origin_cache.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from protego import Protego

from oafetch.config import RobotsConfig
from oafetch.http.origin_cache import OriginCache, origin_of

MAX_ROBOTS_BYTES = 512 * 1024
PRODUCT_TOKEN = "oafetch"

# fetch(robots_url) -> (status, text); status None when the origin could not be reached.
RobotsFetcher = Callable[[str], tuple[int | None, str]]


@dataclass(frozen=True)
class RobotsVerdict:
    allowed: bool
    crawl_delay_s: float | None = None
    source: str = "parsed"  # parsed | allow-all | unreachable


@dataclass
class _Entry:
    parser: Protego | None
    mode: str  # parsed | allow-all | unreachable
    expires: float
    crawl_delay_s: float | None


class RobotsCache:
    """Answers "may oafetch fetch this URL?" per origin, fetching robots.txt on first need."""

    def __init__(
        self,
        config: RobotsConfig,
        fetch: RobotsFetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        cancel: threading.Event | None = None,
    ) -> None:
        self._config = config
        self._fetch = fetch
        self._clock = clock
        self._entries = OriginCache(self._load, what="robots.txt", clock=clock, cancel=cancel)

    def check(self, url: str) -> RobotsVerdict:
        """The verdict for ``url`` (fetches the origin's robots.txt if not cached)."""
        if not self._config.enabled:
            return RobotsVerdict(True, None, "allow-all")
        entry = self._entries.get(origin_of(url))
        if entry.mode == "unreachable":
            return RobotsVerdict(False, None, "unreachable")
        if entry.parser is None:
            return RobotsVerdict(True, None, "allow-all")
        allowed = entry.parser.can_fetch(url, PRODUCT_TOKEN)
        return RobotsVerdict(bool(allowed), entry.crawl_delay_s, "parsed")

    def _load(self, origin: str) -> _Entry:
        now = self._clock()
        try:
            status, text = self._fetch(f"{origin}/robots.txt")
        except Exception:  # any failure to reach it: RFC 9309 "unreachable"
            status, text = None, ""
        if status is None or status >= 500:
            return _Entry(None, "unreachable", now + self._config.error_ttl_s, None)
        if status >= 400:
            return _Entry(None, "allow-all", now + self._config.ttl_s, None)
        if status >= 300:  # redirects were already followed by the fetcher; treat the rest as none
            return _Entry(None, "allow-all", now + self._config.ttl_s, None)
        parser = Protego.parse(text[:MAX_ROBOTS_BYTES])
        delay = parser.crawl_delay(PRODUCT_TOKEN)
        rate = parser.request_rate(PRODUCT_TOKEN)
        if rate is not None and rate.requests:
            per = rate.seconds / rate.requests
            delay = max(delay or 0.0, per)
        if delay is not None:
            delay = min(float(delay), self._config.max_crawl_delay_s)
        return _Entry(parser, "parsed", now + self._config.ttl_s, delay)
