"""Semantic Scholar Graph API: ``GET /graph/v1/paper/{DOI:…|ARXIV:…|PMCID:…|PMID:…}``.

Asks for ``externalIds,isOpenAccess,openAccessPdf``. ``openAccessPdf`` may be ``null`` (no
candidates) or carry an empty ``url``; then its ``disclaimer`` ("Notice: Paper or abstract
available at https://arxiv.org/abs/… or https://doi.org/…, which is subject to …") names the
source pages, which are offered as landing pages (the Unpaywall API URL it also names, with its
``<INSERT_YOUR_EMAIL>`` placeholder, is not a page and is skipped). Its ``status`` (GREEN →
repository, GOLD/HYBRID/BRONZE → publisher) gives the host type. The key is optional
(``S2_API_KEY``, header ``x-api-key``); without one the shared pool throttles often (429,
retried with backoff). ``externalIds`` names the arXiv id, PMID and PMCID, which later tiers
use.
"""

from __future__ import annotations

import re
from typing import ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, WorkIds, dig, quote_path, text
from oafetch.resolvers.common import (
    Found,
    OptionalKeyResolver,
    bad_response,
    error_body,
    fetch_json,
    require_dict,
)
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_VERSION = re.compile(r"v\d+$")
_DISCLAIMER_URL = re.compile(r"https?://[^\s<>\"']+", re.I)
_API_HOSTS = ("api.unpaywall.org", "api.semanticscholar.org", "api.openalex.org")
FIELDS = "externalIds,title,isOpenAccess,openAccessPdf"
_HOST_TYPES = {
    "green": "repository",
    "gold": "publisher",
    "hybrid": "publisher",
    "bronze": "publisher",
}


class SemanticScholarResolver(OptionalKeyResolver):
    """The open-access PDF Semantic Scholar links for a paper."""

    name: ClassVar[str] = "semantic_scholar"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.semanticscholar.org"}
    credential_env: ClassVar[tuple[str, ...]] = ("S2_API_KEY",)

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return self._paper_id(work, ids) is not None

    @staticmethod
    def _paper_id(work: Work, ids: WorkIds) -> str | None:
        if ids.doi:
            return f"DOI:{ids.doi}"
        if ids.arxiv:
            return f"ARXIV:{_VERSION.sub('', ids.arxiv)}"
        if ids.pmcid:
            return f"PMCID:{ids.pmcid}"
        if ids.pmid:
            return f"PMID:{ids.pmid}"
        return None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        paper_id = self._paper_id(work, ids)
        assert paper_id is not None
        url = f"{self.base_url}/graph/v1/paper/{quote_path(paper_id)}"
        headers = {"x-api-key": key} if (key := self.secret) else None
        data = fetch_json(http, url, params={"fields": FIELDS}, headers=headers)
        if data is None:
            return []
        paper = require_dict(data, self.name, url)
        if (message := error_body(paper)) is not None:
            raise bad_response(self.name, url, f"error body: {message}")
        external = paper.get("externalIds")
        if isinstance(external, dict):
            pmc = external.get("PubMedCentral")
            ids.learn(
                doi=text(external.get("DOI")),
                arxiv=text(external.get("ArXiv")),
                pmid=str(external["PubMed"])
                if isinstance(external.get("PubMed"), str | int)
                else None,
                pmcid=str(pmc) if isinstance(pmc, str | int) else None,
            )
        ids.learn_about(title=paper.get("title"))
        found = Found(self.name, ids)
        status = (text(dig(paper, "openAccessPdf", "status")) or "").lower()
        facts = {
            "license": dig(paper, "openAccessPdf", "license"),
            "host_type": _HOST_TYPES.get(status),
        }
        pdf = text(dig(paper, "openAccessPdf", "url"))
        if pdf is not None:
            found.add(pdf, Role.ARTIFACT, **facts)
        else:
            for page in disclaimer_pages(dig(paper, "openAccessPdf", "disclaimer")):
                found.add(page, Role.LANDING, kind=Kind.HTML, **facts)
        return found.result()


def disclaimer_pages(disclaimer: object) -> list[str]:
    """The source pages an ``openAccessPdf.disclaimer`` names (API URLs left out)."""
    if not isinstance(disclaimer, str):
        return []
    pages = []
    for match in _DISCLAIMER_URL.finditer(disclaimer):
        url = match[0].rstrip(".,;:)]")
        host = url.split("/", 3)[2].lower() if url.count("/") >= 2 else ""
        if host in _API_HOSTS or "<" in url or url in pages:
            continue
        pages.append(url)
    return pages
