"""What the source resolvers share: asking a JSON/XML API, shape checks, collecting candidates.

* :func:`fetch_json` / :func:`fetch_xml` ask an API through the run's client and turn a 404
  into ``None`` ("this source does not know the work"), an unparseable body into
  :class:`~oafetch.errors.ResolverError` (``bad-response``).
* :class:`Found` collects candidates in trust order: file URLs first, landing pages after,
  each URL once, anything that is not an absolute http(s) URL dropped. Legacy PMC
  ``/articles/PMC…/pdf/`` pages (bot walls) are dropped too; their PMCID is learnt instead, so
  the PMC resolver fetches the file from the PMC cloud.
* :func:`learn_from_url` reads identifiers out of well-known repository URLs.
* :class:`OptionalKeyResolver` is the base of sources whose API key is optional.

Error messages name the source and the redacted URL, never a credential.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from enum import Enum
from typing import Any, Final
from urllib.parse import urlsplit

from oafetch.errors import FetchError, ResolverError
from oafetch.http.client import HttpClient
from oafetch.identifiers import id_from_url
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, text
from oafetch.tokens import Kind, Reason, Role
from oafetch.urls import canonical_url, redact_url

_PMC_PATH = re.compile(r"/(?:pmc/)?articles/(PMC\d+)(/pdf(?:/.*)?)?/?$", re.I)
_PMC_HOSTS = ("ncbi.nlm.nih.gov", "europepmc.org")


class _Unsaid(Enum):
    """A source that names no kind for a file URL (most list only PDF links)."""

    KIND = "unsaid"


UNSAID: Final = _Unsaid.KIND
# A file whose kind the source does not know (Crossref ``unspecified``): no guess is recorded.
UNKNOWN_KIND: Final = None


def bad_response(source: str, url: str, detail: str) -> ResolverError:
    """The error for an answer of the wrong shape or an error body (``bad-response``)."""
    return ResolverError(
        Reason.BAD_RESPONSE, f"{source}: {detail} from {redact_url(url)}", url=redact_url(url)
    )


def fetch_json(
    http: HttpClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    json_body: Any = None,
    throttle_statuses: frozenset[int] = frozenset(),
) -> Any:
    """The parsed JSON answer, or ``None`` when the API answers 404/410 (work unknown).

    Raises:
        FetchError: the request failed (throttled, 5xx after retries, refused …).
        ResolverError: the body is not JSON (``bad-response``).
    """
    try:
        return http.get_json(
            url,
            params=params,
            headers=headers,
            method=method,
            json_body=json_body,
            throttle_statuses=throttle_statuses,
        )
    except FetchError as exc:
        if exc.reason is Reason.NOT_FOUND:
            return None
        raise


def fetch_xml(
    http: HttpClient,
    url: str,
    *,
    source: str,
    params: Mapping[str, str] | None = None,
    throttle_statuses: frozenset[int] = frozenset(),
) -> ET.Element | None:
    """The parsed XML root of an API answer, or ``None`` for a 404/410.

    Raises:
        FetchError: the request failed.
        ResolverError: the body is not well-formed XML (``bad-response``).
    """
    try:
        response = http.get_text(
            url,
            params=params,
            headers={"Accept": "application/xml, application/atom+xml"},
            throttle_statuses=throttle_statuses,
        )
    except FetchError as exc:
        if exc.reason is Reason.NOT_FOUND:
            return None
        raise
    try:
        # The stdlib parser fetches no external entities and bounds entity expansion.
        return ET.fromstring(response.text)
    except ET.ParseError as exc:
        raise bad_response(source, url, f"invalid XML ({exc})") from None


def require_dict(data: Any, source: str, url: str) -> dict[str, Any]:
    """``data`` if it is a JSON object, else ``bad-response``."""
    if not isinstance(data, dict):
        raise bad_response(source, url, f"expected a JSON object, got {type(data).__name__}")
    return data


def error_body(data: Mapping[str, Any]) -> str | None:
    """The message of an API error body (``{"error": …}``, ``{"status": "error"}``), if any."""
    error = data.get("error")
    if error is True or (isinstance(error, str) and error.strip()):
        message = data.get("message") or data.get("errmsg") or error
        return str(message)[:200]
    if isinstance(error, dict):
        return str(error.get("message") or error)[:200]
    status = data.get("status")
    if isinstance(status, str) and status.lower() in ("error", "failed", "fail"):
        return str(data.get("message") or data.get("errmsg") or status)[:200]
    return None


def results_list(data: Any, source: str, url: str) -> list[Any]:
    """The ``results`` list of a search answer: a JSON object, no error body, a list.

    Raises:
        ResolverError: any of the three is not so (``bad-response``).
    """
    body = require_dict(data, source, url)
    if (message := error_body(body)) is not None:
        raise bad_response(source, url, f"error body: {message}")
    results = body.get("results")
    if not isinstance(results, list):
        raise bad_response(source, url, "no results list")
    return results


def is_http_url(value: Any) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def legacy_pmc_pdf(url: str) -> str | None:
    """The PMCID of a legacy PMC article-PDF page (served to bots as a wall), else ``None``."""
    match = _PMC_PATH.search(urlsplit(url).path)
    return match[1].upper() if match and match[2] else None


def learn_from_url(ids: WorkIds, url: str) -> None:
    """Learn the arXiv id, PMCID or PMID a repository URL names (``arxiv.org/abs/…`` …)."""
    named = id_from_url(url)
    if named is not None and named[0] in ("arxiv", "pmcid", "pmid"):
        ids.learn(**{named[0]: named[1]})
        return
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return
    if host.endswith(_PMC_HOSTS) and (match := _PMC_PATH.search(urlsplit(url).path)):
        ids.learn(pmcid=match[1])


def same_doi(a: Any, b: str | None) -> bool:
    """Whether two DOIs (either maybe in URL or ``doi:`` form) name the same work."""
    left, right = text(a), b
    if left is None or right is None:
        return False

    def norm(value: str) -> str:
        value = value.strip().lower()
        for prefix in (
            "https://doi.org/",
            "http://doi.org/",
            "https://dx.doi.org/",
            "http://dx.doi.org/",
            "doi:",
        ):
            value = value.removeprefix(prefix)
        return value

    return norm(left) == norm(right)


class Found:
    """Candidates of one source, in trust order, each URL once (compared in canonical form).

    File URLs (``role=artifact``) come before landing pages; among each, the order of
    :meth:`add` calls is kept. Adding a URL again as a file upgrades a landing entry.
    """

    def __init__(
        self, source: str, ids: WorkIds | None = None, *, retracted: bool | None = None
    ) -> None:
        self.source = source
        self.ids = ids
        self.retracted = retracted  # what the source says of the work, for every candidate
        self._items: dict[str, Candidate] = {}

    def add(
        self,
        url: Any,
        role: Role = Role.ARTIFACT,
        *,
        kind: Kind | _Unsaid | None = UNSAID,
        version: Any = None,
        license: Any = None,
        host_type: Any = None,
        retracted: bool | None = None,
        md5: str | None = None,
    ) -> None:
        """Add ``url`` if it is an absolute http(s) URL (anything else is ignored).

        A file URL (``role=artifact``) whose ``kind`` is not given is taken to be a PDF (most
        sources list nothing else); pass the kind the source states, or ``UNKNOWN_KIND`` when
        it says it does not know (a landing page is ``Role.LANDING``, ``Kind.HTML``).
        """
        if not is_http_url(url):
            return
        url = str(url).strip()
        if self.ids is not None:
            learn_from_url(self.ids, url)
            if legacy_pmc_pdf(url) is not None:
                self.ids.learn(pmcid=legacy_pmc_pdf(url))
                return  # a bot wall: the PMC resolver fetches the cloud copy instead
        if kind is UNSAID:
            kind = Kind.PDF if role is Role.ARTIFACT else None
        assert not isinstance(kind, _Unsaid)
        candidate = Candidate(
            url,
            self.source,
            role,
            kind,
            text(version),
            text(license),
            text(host_type),
            retracted=self.retracted if retracted is None else retracted,
            md5=md5,
        )
        key = canonical_url(url)  # one resource, one candidate, however it is spelt
        old = self._items.get(key)
        if old is None or (old.role is Role.LANDING and role is Role.ARTIFACT):
            self._items[key] = candidate

    def __len__(self) -> int:
        return len(self._items)

    def result(self) -> list[Candidate]:
        """Artifacts first, then landing pages."""
        items = list(self._items.values())
        return [c for c in items if c.role is Role.ARTIFACT] + [
            c for c in items if c.role is not Role.ARTIFACT
        ]


class OptionalKeyResolver(Resolver):
    """A source that works without a key but uses one when configured.

    ``credential`` stays unset (the registry never skips the source); the key comes from
    ``[resolvers.<name>] api_key`` or the first of ``credential_env`` that is set.
    :attr:`secret` returns it, so the run scrubs it from every message.
    """

    @property
    def secret(self) -> str | None:
        key = self.settings.api_key
        if key is not None and key.get_secret_value().strip():
            return key.get_secret_value().strip()
        return super().secret
