"""OpenAlex: ``GET /works/{doi:…|pmid:…|pmcid:…|W…}`` → the best OA location, then the others.

A location has ``pdf_url`` (a file, often null) and ``landing_page_url``; ``open_access.oa_url``
may be either. A location's ``version`` is filled from ``is_published``/``is_accepted`` when it
is null, its ``license`` from ``license_id``. OpenAlex has no arXiv key: a work known only by
its arXiv id is asked by its arXiv DOI (``doi:10.48550/arxiv.…``).

The API key (``[resolvers.openalex] api_key`` or ``OPENALEX_API_KEY``, sent as ``api_key``, see
:func:`openalex_api_key`) is optional here: singleton lookups cost nothing, but since 13 Feb 2026
a run without a key has a tiny daily allowance, which the run's start says once. OpenAlex
reports throttling as **403** as well as 429, so 403 is retried and ends as ``throttled``.
Merged works answer 301; the client follows it. The record also names the work's DOI, PMID,
PMCID and arXiv landing page, and what ``content.openalex.org`` has cached (``has_content``,
``content_urls``), which later tiers use.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from oafetch.config import Config
from oafetch.http.client import HttpClient
from oafetch.identifiers import arxiv_doi
from oafetch.resolvers.base import Candidate, WorkIds, as_list, dig, quote_path, text, truthy
from oafetch.resolvers.common import (
    Found,
    OptionalKeyResolver,
    bad_response,
    error_body,
    fetch_json,
    require_dict,
)
from oafetch.tokens import Role
from oafetch.works import IdKind, Work

SELECT = (
    "id,doi,title,ids,open_access,best_oa_location,locations,has_content,content_urls,is_retracted"
)
API_HOST = "api.openalex.org"
#: The kinds of file content.openalex.org serves, as ``has_content`` names them.
CONTENT_KINDS = ("pdf", "grobid_xml")
NO_KEY_NOTE = (
    "openalex: no API key ([resolvers.openalex] api_key or OPENALEX_API_KEY); since 13 Feb 2026 "
    "a keyless client gets $0.01 of OpenAlex a day, a free key $1 — get one at openalex.org"
)


def openalex_api_key(config: Config) -> str | None:
    """The OpenAlex API key: ``[resolvers.openalex] api_key``, else ``OPENALEX_API_KEY``."""
    key = config.resolver(OpenAlexResolver.name).api_key
    if key is not None and key.get_secret_value().strip():
        return key.get_secret_value().strip()
    return os.environ.get("OPENALEX_API_KEY", "").strip() or None


class OpenAlexResolver(OptionalKeyResolver):
    """Open-access locations of a work, as OpenAlex knows them."""

    name: ClassVar[str] = "openalex"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.openalex.org"}
    credential_env: ClassVar[tuple[str, ...]] = ("OPENALEX_API_KEY",)
    throttle_statuses: ClassVar[frozenset[int]] = frozenset({403})
    reports_oa_status: ClassVar[bool] = True

    @property
    def secret(self) -> str | None:
        return openalex_api_key(self.config)

    def note(self) -> str | None:
        """A run against the real API without a key is warned once about its tiny allowance."""
        if self.secret is None and self.api_host == API_HOST:
            return NO_KEY_NOTE
        return None

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return self.lookup_key(work, ids) is not None

    @staticmethod
    def lookup_key(work: Work, ids: WorkIds) -> str | None:
        """What OpenAlex is asked by (``/works/{key}``): the work's own OpenAlex id, else its
        DOI, OpenAlex id, PMCID, PMID, or the arXiv DOI of its arXiv id."""
        if work.kind is IdKind.OPENALEX:
            return work.value
        if ids.doi:
            return f"doi:{ids.doi}"
        if ids.openalex:
            return ids.openalex
        if ids.pmcid:
            return f"pmcid:{ids.pmcid}"
        if ids.pmid:
            return f"pmid:{ids.pmid}"
        if ids.arxiv:  # no arXiv key in OpenAlex: its DataCite DOI finds the preprint
            return f"doi:{arxiv_doi(ids.arxiv)}"
        return None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        key = self.lookup_key(work, ids)
        assert key is not None
        url = f"{self.base_url}/works/{quote_path(key)}"
        params = {"select": SELECT}
        if (api_key := self.secret) is not None:
            params["api_key"] = api_key
        elif self.config.mailto:
            params["mailto"] = self.config.mailto
        data = fetch_json(http, url, params=params, throttle_statuses=self.throttle_statuses)
        if data is None:
            return []
        record = require_dict(data, self.name, url)
        if (message := error_body(record)) is not None:
            raise bad_response(self.name, url, f"error body: {message}")
        self._learn(record, ids)
        found = Found(self.name, ids, retracted=_retracted(record.get("is_retracted")))
        best = record.get("best_oa_location")
        locations = [best, *as_list(record.get("locations"))]
        for location in locations:
            if isinstance(location, dict) and (location is best or truthy(location.get("is_oa"))):
                self._location(location, found)
        # oa_url repeats a location's URL; when it does not, it is as likely a page as a file.
        found.add(text(dig(record, "open_access", "oa_url")), Role.LANDING)
        return found.result()

    @staticmethod
    def _learn(record: dict[str, Any], ids: WorkIds) -> None:
        ids.learn(
            openalex=text(record.get("id")) or text(dig(record, "ids", "openalex")),
            doi=text(record.get("doi")) or text(dig(record, "ids", "doi")),
            pmid=_tail(dig(record, "ids", "pmid")),
            pmcid=_tail(dig(record, "ids", "pmcid")),
        )
        ids.learn_about(
            title=record.get("title") or record.get("display_name"),
            oa_status=dig(record, "open_access", "oa_status"),
        )
        if (kinds := content_kinds(record)) is not None:
            ids.learn_content(kinds)

    @staticmethod
    def _location(location: dict[str, Any], found: Found) -> None:
        source_type = text(dig(location, "source", "type"))
        host_type = None
        if source_type:
            host_type = "repository" if source_type == "repository" else "publisher"
        for url, role in (
            (location.get("pdf_url"), Role.ARTIFACT),
            (location.get("landing_page_url"), Role.LANDING),
        ):
            found.add(
                text(url),
                role,
                version=location_version(location),
                license=text(location.get("license")) or _tail(location.get("license_id")),
                host_type=host_type,
            )


def location_version(location: dict[str, Any]) -> str | None:
    """A location's ``version``, else what ``is_published``/``is_accepted`` say it is.

    Both flags false is no evidence of a submitted version (metadata-only locations carry
    them too), so it gives nothing.
    """
    if version := text(location.get("version")):
        return version
    if location.get("is_published") is True:
        return "publishedVersion"
    if location.get("is_accepted") is True:
        return "acceptedVersion"
    return None


def content_kinds(record: dict[str, Any]) -> frozenset[str] | None:
    """What content.openalex.org has cached for a work record, or ``None`` when it does not say.

    ``has_content`` (``{"pdf": true, "grobid_xml": false}``) is the answer; a non-empty
    ``content_urls`` entry counts as well (older records carry only one of the two).
    """
    flags, urls = record.get("has_content"), record.get("content_urls")
    if not isinstance(flags, dict) and not isinstance(urls, dict):
        return None
    kinds = {k for k in CONTENT_KINDS if isinstance(flags, dict) and flags.get(k) is True}
    kinds |= {k for k in CONTENT_KINDS if isinstance(urls, dict) and text(urls.get(k))}
    return frozenset(kinds)


def _retracted(value: Any) -> bool | None:
    """OpenAlex ``is_retracted`` as a flag (``None`` when the record does not say)."""
    return value if isinstance(value, bool) else None


def _tail(value: Any) -> str | None:
    """``https://pubmed.ncbi.nlm.nih.gov/123`` → ``123`` (the last path segment; also a
    ``license_id`` such as ``https://openalex.org/licenses/cc-by`` → ``cc-by``)."""
    raw = text(value)
    return raw.rstrip("/").rsplit("/", 1)[-1] if raw else None
