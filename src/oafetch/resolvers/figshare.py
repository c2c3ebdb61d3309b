"""figshare: ``GET /v2/articles/{id}`` for a ``10.6084/m9.figshare.{id}[.vN]`` DOI.

Other DOIs are searched with ``POST /v2/articles/search`` and body ``{"doi": "…"}``; each
matching article is then fetched. An embargoed article has no candidates; of its ``files``,
link-only ones (they live elsewhere) are skipped, and PDFs (by name or mimetype) are offered at
their ``download_url`` (``ndownloader.figshare.com``, which serves files without the WAF
challenge the ``*.figshare.com`` article pages answer with).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, dig, text, truthy
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict, same_doi
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_ARTICLE_DOI = re.compile(r"^10\.6084/m9\.figshare\.(\d+)(?:\.v\d+)?$", re.I)
MAX_ARTICLES = 3


class FigshareResolver(Resolver):
    """PDF files of a public figshare article."""

    name: ClassVar[str] = "figshare"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.figshare.com"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        if match := _ARTICLE_DOI.match(ids.doi):
            article_ids = [match[1]]
        else:
            article_ids = self._search(ids.doi, http)
        found = Found(self.name, ids)
        for article_id in article_ids[:MAX_ARTICLES]:
            url = f"{self.base_url}/v2/articles/{article_id}"
            data = fetch_json(http, url)
            if data is not None:
                self._article(require_dict(data, self.name, url), found)
        return found.result()

    def _search(self, doi: str, http: HttpClient) -> list[str]:
        url = f"{self.base_url}/v2/articles/search"
        data = fetch_json(http, url, method="POST", json_body={"doi": doi})
        if data is None:
            return []
        if not isinstance(data, list):
            raise bad_response(self.name, url, "expected a JSON list of articles")
        return [
            str(item["id"])
            for item in data
            if isinstance(item, dict)
            and isinstance(item.get("id"), int | str)
            and same_doi(item.get("doi"), doi)
        ]

    @staticmethod
    def _article(article: dict[str, Any], found: Found) -> None:
        if truthy(article.get("is_embargoed")):
            return
        licence = text(dig(article, "license", "name")) or text(article.get("license"))
        for item in as_list(article.get("files")):
            if not isinstance(item, dict) or truthy(item.get("is_link_only")):
                continue
            name = (text(item.get("name")) or "").lower()
            mimetype = (text(item.get("mimetype")) or "").lower()
            if name.endswith(".pdf") or "pdf" in mimetype:
                found.add(
                    text(item.get("download_url")),
                    Role.ARTIFACT,
                    kind=Kind.PDF,
                    license=licence,
                    host_type="repository",
                )
