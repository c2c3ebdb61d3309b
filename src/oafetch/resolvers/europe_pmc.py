"""Europe PMC: ``GET /search?query=…&resultType=core&format=json`` → full-text URLs.

The query is ``PMCID:PMC…``, ``DOI:"…"`` or ``EXT_ID:… AND SRC:MED``; the matching result's
``fullTextUrlList`` (only present with ``resultType=core``) lists URLs with an availability
code: open (``OA``) or free (``F``) ``pdf`` entries are files, ``html`` entries pages. For an
open article with a PDF the render URL ``{render_url}/articles/{PMCID}?pdf=render`` is offered
too, and ``/{PMCID}/fullTextXML`` when XML is an accepted download type. Booleans are the
strings ``"Y"``/``"N"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import (
    Candidate,
    Resolver,
    WorkIds,
    as_list,
    dig,
    quote_path,
    text,
    truthy,
)
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict, same_doi
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_OPEN_CODES = {"oa", "f"}


class EuropePmcResolver(Resolver):
    """Full texts Europe PMC holds or links for a work."""

    name: ClassVar[str] = "europe_pmc"
    endpoints: ClassVar[dict[str, str]] = {
        "base_url": "https://www.ebi.ac.uk/europepmc/webservices/rest",
        "render_url": "https://europepmc.org",
    }

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return bool(ids.pmcid or ids.doi or ids.pmid)

    @staticmethod
    def _query(ids: WorkIds) -> str:
        if ids.pmcid:
            return f"PMCID:{ids.pmcid}"
        if ids.doi:
            return f'DOI:"{ids.doi}"'
        return f"EXT_ID:{ids.pmid} AND SRC:MED"

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        url = f"{self.base_url}/search"
        params = {
            "query": self._query(ids),
            "resultType": "core",
            "format": "json",
            "pageSize": "5",
        }
        data = fetch_json(http, url, params=params)
        if data is None:
            return []
        body = require_dict(data, self.name, url)
        if "resultList" not in body and ("errCode" in body or "error" in body):
            raise bad_response(self.name, url, f"error body: {str(body)[:200]}")
        results = [r for r in as_list(dig(body, "resultList", "result")) if isinstance(r, dict)]
        result = self._matching(results, ids)
        if result is None:
            return []
        ids.learn(
            pmcid=text(result.get("pmcid")),
            pmid=text(result.get("pmid")),
            doi=text(result.get("doi")),
        )
        # authorString: "Smith J, Doe AB." — the first author's family name before initials
        first = (text(result.get("authorString")) or "").split(",", 1)[0].split()
        ids.learn_about(title=result.get("title"), author=" ".join(first[:-1] or first) or None)
        pmcid = text(result.get("pmcid"))
        facts: dict[str, Any] = {
            "license": result.get("license"),
            "host_type": "repository",
            "version": "publishedVersion",
        }
        found = Found(self.name, ids)
        if (
            pmcid
            and truthy(result.get("hasPDF"))
            and (truthy(result.get("isOpenAccess")) or truthy(result.get("inEPMC")))
        ):
            found.add(
                f"{self.urls['render_url']}/articles/{quote_path(pmcid)}?pdf=render",
                Role.ARTIFACT,
                kind=Kind.PDF,
                **facts,
            )
        for entry in as_list(dig(result, "fullTextUrlList", "fullTextUrl")):
            if not isinstance(entry, dict):
                continue
            code = (text(entry.get("availabilityCode")) or "").lower()
            style = (text(entry.get("documentStyle")) or "").lower()
            if code not in _OPEN_CODES:
                continue
            if style == "pdf":
                found.add(text(entry.get("url")), Role.ARTIFACT, kind=Kind.PDF, **facts)
            elif style == "html":
                found.add(text(entry.get("url")), Role.LANDING, kind=Kind.HTML, **facts)
        if pmcid and truthy(result.get("isOpenAccess")) and "xml" in self.config.download.accept:
            found.add(
                f"{self.base_url}/{quote_path(pmcid)}/fullTextXML",
                Role.ARTIFACT,
                kind=Kind.XML,
                **facts,
            )
        return found.result()

    @staticmethod
    def _matching(results: list[dict[str, Any]], ids: WorkIds) -> dict[str, Any] | None:
        """The result that is the work (a search may return near misses)."""
        for result in results:
            if ids.pmcid and (text(result.get("pmcid")) or "").upper() == ids.pmcid:
                return result
            if ids.doi and same_doi(result.get("doi"), ids.doi):
                return result
            if ids.pmid and text(str(result.get("pmid") or "")) == ids.pmid:
                return result
        return None
