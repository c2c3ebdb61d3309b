"""DOAJ: ``GET /api/search/articles/doi:"{doi}"`` → the article's full-text links.

The query sits in the path (spaces as ``%20``, never ``+``). DOAJ hosts no files: its
``bibjson.link[type=fulltext]`` URLs are mostly publisher landing pages (a ``content_type`` of
``PDF`` makes one a file). Only a result whose ``bibjson.identifier[type=doi]`` matches counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, dig, quote_path, text
from oafetch.resolvers.common import (
    Found,
    fetch_json,
    results_list,
    same_doi,
)
from oafetch.tokens import Kind, Role
from oafetch.works import Work


class DoajResolver(Resolver):
    """Full-text links of an article in a DOAJ journal."""

    name: ClassVar[str] = "doaj"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://doaj.org"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        query = 'doi:"' + ids.doi + '"'
        url = f"{self.base_url}/api/search/articles/{quote_path(query)}"
        data = fetch_json(http, url)
        if data is None:
            return []
        results = results_list(data, self.name, url)
        found = Found(self.name, ids)
        for result in results:
            bibjson = dig(result, "bibjson")
            if isinstance(bibjson, dict) and _has_doi(bibjson, ids.doi):
                self._links(bibjson, found)
        return found.result()

    @staticmethod
    def _links(bibjson: dict[str, Any], found: Found) -> None:
        licence = text(dig(bibjson, "license", 0, "type"))
        for link in as_list(bibjson.get("link")):
            if not isinstance(link, dict) or (text(link.get("type")) or "").lower() != "fulltext":
                continue
            ctype = (text(link.get("content_type")) or "").lower()
            is_pdf = "pdf" in ctype
            found.add(
                text(link.get("url")),
                Role.ARTIFACT if is_pdf else Role.LANDING,
                kind=Kind.PDF if is_pdf else Kind.HTML,
                license=licence,
                host_type="publisher",
                version="publishedVersion",
            )


def _has_doi(bibjson: dict[str, Any], doi: str) -> bool:
    return any(
        isinstance(item, dict)
        and (text(item.get("type")) or "").lower() == "doi"
        and same_doi(item.get("id"), doi)
        for item in as_list(bibjson.get("identifier"))
    )
