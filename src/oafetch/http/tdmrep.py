"""TDM reservations (W3C TDMRep community group final report): may a file be mined?

A rightsholder reserves text-and-data-mining rights on a resource three ways, each later one
superseding the earlier for the same resource (and silence never resetting a value):

1. ``/.well-known/tdmrep.json`` on the origin: an array of rules ``{"location": pattern,
   "tdm-reservation": 0|1, "tdm-policy": url}``. A pattern matches a URL's path from its start,
   ``*`` standing for any run of characters and a final ``$`` for the path's end (robots.txt
   syntax); the first matching rule is the one that counts. Fetched once per origin and kept
   like robots.txt (same fetcher, size cap, decoding; ``ttl_s``/``error_ttl_s`` of
   ``[robots]``); a missing, unreachable or malformed file reserves nothing.
2. ``tdm-reservation`` / ``tdm-policy`` response headers.
3. ``<meta name="tdm-reservation" content="1">`` / ``<meta name="tdm-policy">`` in HTML.

``tdm-reservation`` other than ``0``/``1`` is a protocol error: unset. Pure parsing plus a
per-origin cache; :class:`TdmTransport` applies 1 and 2 to landing and artifact requests when
``[download] tdm = true``, the fallback applies 3 to landing pages.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import httpx

from oafetch.config import RobotsConfig
from oafetch.errors import FetchError
from oafetch.http.origin_cache import OriginCache, origin_of
from oafetch.http.robots import MAX_ROBOTS_BYTES, RobotsFetcher
from oafetch.http.transports import meta_of
from oafetch.tokens import Reason, Role
from oafetch.urls import redact_url

WELL_KNOWN = "/.well-known/tdmrep.json"
MAX_RULES = 1000
_HEAD_CHARS = 256 * 1024  # the meta elements are in the page's head


@dataclass(frozen=True)
class Declaration:
    """What one technique says of a resource: ``reserved`` (None: unset) and its policy URL."""

    reserved: bool | None = None
    policy: str | None = None

    def then(self, later: Declaration) -> Declaration:
        """This declaration superseded by ``later`` where ``later`` says something."""
        if later.reserved is None:
            return self
        return later


class TdmReserved(FetchError):
    """The rightsholder reserves text-and-data-mining rights on this URL."""

    def __init__(self, url: str, how: str, policy: str | None) -> None:
        where = f" (policy {policy})" if policy else ""
        super().__init__(
            Reason.TDM_RESERVED, f"TDM rights reserved by {how} on {url}{where}", url=url
        )
        self.policy = policy


def reservation_value(value: object) -> bool | None:
    """``1`` → True, ``0`` → False, anything else (a protocol error) → None."""
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    return {"1": True, "0": False}.get(text)


def _policy(reserved: bool | None, value: object) -> str | None:
    if reserved is not True or not isinstance(value, str) or not value.strip():
        return None  # a policy beside "not reserved" is not processed
    return value.strip()


def from_headers(headers: Mapping[str, str]) -> Declaration:
    """The ``tdm-reservation``/``tdm-policy`` response headers."""
    reserved = reservation_value(headers.get("tdm-reservation"))
    return Declaration(reserved, _policy(reserved, headers.get("tdm-policy")))


class _Meta(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        named = dict(attrs)
        name = (named.get("name") or "").strip().lower()
        if name in ("tdm-reservation", "tdm-policy") and name not in self.values:
            self.values[name] = named.get("content") or ""


def from_html(html: str) -> Declaration:
    """The ``tdm-reservation``/``tdm-policy`` meta elements of a page."""
    parser = _Meta()
    try:
        parser.feed(html[:_HEAD_CHARS])
        parser.close()
    except Exception:  # a broken page says nothing
        return Declaration()
    reserved = reservation_value(parser.values.get("tdm-reservation"))
    return Declaration(reserved, _policy(reserved, parser.values.get("tdm-policy")))


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    declaration: Declaration


def _compile(location: str) -> re.Pattern[str]:
    """A robots.txt-style path pattern: prefix match, ``*`` any run, final ``$`` the end."""
    anchored = location.endswith("$")
    body = location[:-1] if anchored else location
    regex = ".*".join(re.escape(unquote(part)) for part in body.split("*"))
    return re.compile(regex + ("$" if anchored else ""), re.DOTALL)


def parse_rules(text: str) -> list[Rule]:
    """The rules of a ``tdmrep.json`` body, in order; malformed rules are left out and a body
    that is not a JSON array gives none."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    rules = []
    for entry in data[:MAX_RULES]:
        if not isinstance(entry, dict):
            continue
        location = entry.get("location")
        reserved = reservation_value(entry.get("tdm-reservation"))
        if not isinstance(location, str) or not location or reserved is None:
            continue  # both are mandatory
        declaration = Declaration(reserved, _policy(reserved, entry.get("tdm-policy")))
        rules.append(Rule(_compile(location), declaration))
    return rules


def match(rules: list[Rule], url: str) -> Declaration:
    """The first rule whose pattern matches ``url``'s path (with its query); unset if none."""
    parts = urlsplit(url)
    path = unquote(parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for rule in rules:
        if rule.pattern.match(path):
            return rule.declaration
    return Declaration()


@dataclass
class _Entry:
    rules: list[Rule]
    expires: float


class TdmRepCache:
    """Each origin's ``tdmrep.json`` rules, fetched on first need and kept for ``ttl_s``
    (``error_ttl_s`` after a 5xx or an unreachable origin, which reserves nothing)."""

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
        self._entries = OriginCache(self._load, what="tdmrep.json", clock=clock, cancel=cancel)

    def declaration(self, url: str) -> Declaration:
        """What the origin's ``tdmrep.json`` declares for ``url`` (fetched on first need)."""
        return match(self._entries.get(origin_of(url)).rules, url)

    def _load(self, origin: str) -> _Entry:
        try:
            status, text = self._fetch(origin + WELL_KNOWN)
        except Exception:
            status, text = None, ""
        now = self._clock()
        if status is None or status >= 500:
            return _Entry([], now + self._config.error_ttl_s)
        if status >= 300:
            return _Entry([], now + self._config.ttl_s)
        return _Entry(parse_rules(text[:MAX_ROBOTS_BYTES]), now + self._config.ttl_s)


class TdmTransport(httpx.BaseTransport):
    """With ``tdm = true``: a landing or artifact response whose rightsholder reserves TDM
    rights (its ``tdm-reservation`` header, else the origin's ``tdmrep.json``) is closed
    unread and refused as ``tdm-reserved``."""

    def __init__(self, inner: httpx.BaseTransport, cache: TdmRepCache) -> None:
        self._inner = inner
        self._cache = cache

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        meta = meta_of(request)
        if meta.get("role") not in (Role.LANDING, Role.ARTIFACT) or meta.get("robots"):
            return self._inner.handle_request(request)
        url = str(request.url)
        site = self._cache.declaration(url)
        response = self._inner.handle_request(request)
        if response.is_redirect:  # the hop's target is judged on its own
            return response
        said = site.then(from_headers(response.headers))
        if said.reserved:
            response.close()
            how = "header" if from_headers(response.headers).reserved else WELL_KNOWN
            raise TdmReserved(redact_url(url), how, said.policy)
        return response

    def close(self) -> None:
        self._inner.close()
