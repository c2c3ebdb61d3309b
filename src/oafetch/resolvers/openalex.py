"""OpenAlex: ``GET /works/{doi:…|pmid:…|pmcid:…|W…}`` → the best OA location, then the others.

A location has ``pdf_url`` (a file, often null) and ``landing_page_url``; ``open_access.oa_url``
may be either. The API key (``OPENALEX_API_KEY``, sent as ``api_key``) is optional here:
singleton lookups are free. OpenAlex reports throttling as **403** as well as 429, so 403 is
retried and ends as ``throttled``. Merged works answer 301; the client follows it. The record
also names the work's DOI, PMID, PMCID and arXiv landing page, which later tiers use.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oafetch.http.client import HttpClient
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

SELECT = "id,doi,ids,open_access,best_oa_location,locations"


class OpenAlexResolver(OptionalKeyResolver):
    """Open-access locations of a work, as OpenAlex knows them."""

    name: ClassVar[str] = "openalex"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.openalex.org"}
    credential_env: ClassVar[tuple[str, ...]] = ("OPENALEX_API_KEY",)
    throttle_statuses: ClassVar[frozenset[int]] = frozenset({403})

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return self._key(work, ids) is not None

    @staticmethod
    def _key(work: Work, ids: WorkIds) -> str | None:
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
        return None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        key = self._key(work, ids)
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
        found = Found(self.name, ids)
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
                version=location.get("version"),
                license=location.get("license"),
                host_type=host_type,
            )


def _tail(value: Any) -> str | None:
    """``https://pubmed.ncbi.nlm.nih.gov/123`` → ``123`` (the last path segment)."""
    raw = text(value)
    return raw.rstrip("/").rsplit("/", 1)[-1] if raw else None
