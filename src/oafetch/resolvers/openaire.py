"""OpenAIRE Graph API: ``GET /graph/v1/researchProducts?pid={doi}`` → open instances' URLs.

A product counts when one of its ``pids`` is the DOI (merged records carry several). Each
instance whose ``accessRight.label`` (else the product's ``bestAccessRight``) is ``OPEN`` gives
its ``urls`` — mostly landing pages, so they are pages unless they end in ``.pdf`` — with the
instance's licence. The token is optional (``[resolvers.openaire] api_key`` or
``OPENAIRE_API_TOKEN``, sent as a bearer token); anonymous use allows 60 requests an hour.
The product's PMCID, PMID and arXiv id are learnt.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, WorkIds, as_list, dig, text
from oafetch.resolvers.common import (
    Found,
    OptionalKeyResolver,
    fetch_json,
    results_list,
    same_doi,
)
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_LEARN = {"pmc": "pmcid", "pmcid": "pmcid", "pmid": "pmid", "arxiv": "arxiv"}


class OpenAireResolver(OptionalKeyResolver):
    """Open instances of a research product in the OpenAIRE Graph."""

    name: ClassVar[str] = "openaire"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.openaire.eu"}
    credential_env: ClassVar[tuple[str, ...]] = ("OPENAIRE_API_TOKEN",)

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        url = f"{self.base_url}/graph/v1/researchProducts"
        headers = {"Authorization": f"Bearer {key}"} if (key := self.secret) else None
        data = fetch_json(http, url, params={"pid": ids.doi}, headers=headers)
        if data is None:
            return []
        results = results_list(data, self.name, url)
        found = Found(self.name, ids)
        for product in results:
            if isinstance(product, dict) and self._is_work(product, ids):
                self._product(product, found)
        return found.result()

    @staticmethod
    def _is_work(product: dict[str, Any], ids: WorkIds) -> bool:
        pids = [p for p in as_list(product.get("pids")) if isinstance(p, dict)]
        if not any(
            (text(p.get("scheme")) or "").lower() == "doi" and same_doi(p.get("value"), ids.doi)
            for p in pids
        ):
            return False
        for pid in pids:
            key = _LEARN.get((text(pid.get("scheme")) or "").lower())
            if key is not None:
                ids.learn(**{key: text(pid.get("value"))})
        return True

    @staticmethod
    def _product(product: dict[str, Any], found: Found) -> None:
        best = (text(dig(product, "bestAccessRight", "label")) or "").upper()
        for instance in as_list(product.get("instances")):
            if not isinstance(instance, dict):
                continue
            access = (text(dig(instance, "accessRight", "label")) or best).upper()
            if access != "OPEN":
                continue
            for url in as_list(instance.get("urls")):
                raw = text(url)
                is_pdf = bool(raw) and urlsplit(raw or "").path.lower().endswith(".pdf")
                found.add(
                    raw,
                    Role.ARTIFACT if is_pdf else Role.LANDING,
                    kind=Kind.PDF if is_pdf else Kind.HTML,
                    license=instance.get("license"),
                )
