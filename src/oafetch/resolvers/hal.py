"""HAL: ``GET /search/?q=doiId_s:"…"&fl=…&wt=json`` → the deposit's main file and other files.

``fileMain_s`` (the main PDF) and ``files_s`` are files, ``uri_s`` the record page; every field
may be a scalar or an array. Notice-only records (``submitType_s == "notice"``, no
``fileMain_s``) have no candidates; embargoed files answer a non-200 status at download time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, dig, text
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict, same_doi
from oafetch.tokens import Kind, Role
from oafetch.works import Work

FIELDS = (
    "halId_s,doiId_s,uri_s,fileMain_s,files_s,linkExtUrl_s,openAccess_bool,submitType_s,licence_s"
)


class HalResolver(Resolver):
    """Files deposited in HAL for a DOI."""

    name: ClassVar[str] = "hal"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.archives-ouvertes.fr"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        url = f"{self.base_url}/search/"
        params = {"q": f'doiId_s:"{ids.doi}"', "fl": FIELDS, "wt": "json", "rows": "5"}
        data = fetch_json(http, url, params=params)
        if data is None:
            return []
        body = require_dict(data, self.name, url)
        docs = dig(body, "response", "docs")
        if not isinstance(docs, list):
            detail = dig(body, "error", "msg") or "no response.docs list"
            raise bad_response(self.name, url, f"error body: {str(detail)[:200]}")
        found = Found(self.name, ids)
        for doc in docs:
            dois = as_list(doc.get("doiId_s")) if isinstance(doc, dict) else []
            if any(same_doi(d, ids.doi) for d in dois):
                self._doc(doc, found)
        return found.result()

    @staticmethod
    def _doc(doc: dict[str, Any], found: Found) -> None:
        if (text(_first(doc.get("submitType_s"))) or "").lower() == "notice" and not doc.get(
            "fileMain_s"
        ):
            return
        facts: dict[str, Any] = {"host_type": "repository", "license": _first(doc.get("licence_s"))}
        for url in as_list(doc.get("fileMain_s")) + as_list(doc.get("files_s")):
            found.add(text(url), Role.ARTIFACT, kind=Kind.PDF, **facts)
        if len(found):
            found.add(text(_first(doc.get("uri_s"))), Role.LANDING, **facts)


def _first(value: Any) -> Any:
    """The first element of an array field, or the scalar itself."""
    items = as_list(value)
    return items[0] if items else None
