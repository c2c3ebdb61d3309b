"""CORE v3: ``GET /v3/search/works/?q=doi:"…"&limit=5`` with ``Authorization: Bearer {key}``.

The key is **required** (``CORE_API_KEY``; anonymous calls are effectively always throttled),
so the registry leaves CORE out when it is missing. A result whose ``doi`` matches gives its
``downloadUrl`` and ``links[type=download]`` (files on core.ac.uk) and its
``sourceFulltextUrls`` (repository pages). The path keeps its trailing slash (without it CORE
answers 301). The token goes only to the API host: candidate URLs never carry it, and the
client drops secret headers on a cross-host redirect.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oafetch.errors import ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, text
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict, same_doi
from oafetch.tokens import Kind, Reason, Role
from oafetch.works import Work


class CoreResolver(Resolver):
    """Full texts CORE aggregated from repositories."""

    name: ClassVar[str] = "core"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.core.ac.uk"}
    credential: ClassVar[str | None] = "api_key"
    credential_env: ClassVar[tuple[str, ...]] = ("CORE_API_KEY",)

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        key = self.secret
        if not key:
            raise ResolverError(
                Reason.NO_CREDENTIAL,
                "core needs an API key: set [resolvers.core] api_key or CORE_API_KEY",
            )
        url = f"{self.base_url}/v3/search/works/"
        data = fetch_json(
            http,
            url,
            params={"q": f'doi:"{ids.doi}"', "limit": "5"},
            headers={"Authorization": f"Bearer {key}"},
        )
        if data is None:
            return []
        body = require_dict(data, self.name, url)
        results = body.get("results")
        if not isinstance(results, list):
            message = text(body.get("message")) or "no results list"
            raise bad_response(self.name, url, f"error body: {message[:200]}")
        found = Found(self.name, ids)
        for result in results:
            if isinstance(result, dict) and same_doi(result.get("doi"), ids.doi):
                self._result(result, found)
        return found.result()

    @staticmethod
    def _result(result: dict[str, Any], found: Found) -> None:
        facts: dict[str, Any] = {"host_type": "repository"}
        found.add(text(result.get("downloadUrl")), Role.ARTIFACT, kind=Kind.PDF, **facts)
        for link in as_list(result.get("links")):
            if isinstance(link, dict) and text(link.get("type")) == "download":
                found.add(text(link.get("url")), Role.ARTIFACT, kind=Kind.PDF, **facts)
        for source_url in as_list(result.get("sourceFulltextUrls")):
            found.add(text(source_url), Role.LANDING, **facts)
