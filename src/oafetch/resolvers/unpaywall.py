"""Unpaywall: ``GET /v2/{doi}?email=…`` → the best OA location, then every other location.

Each location gives ``url_for_pdf`` (a file) and ``url_for_landing_page`` (a page); ``url`` is
one of the two. ``best_oa_location`` is ``null`` for a closed work (no candidates). The email is
mandatory: a placeholder address is refused with **422**, which is reported as
``bad-request`` — never as "not open access". Repository locations also reveal arXiv ids and
PMCIDs (``pmh_id`` ``oai:arXiv.org:…``), which later tiers use.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from oafetch.errors import FetchError, ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import (
    Candidate,
    Resolver,
    WorkIds,
    as_list,
    dig,
    quote_path,
    text,
)
from oafetch.resolvers.common import Found, bad_response, error_body, fetch_json, require_dict
from oafetch.tokens import Reason, Role
from oafetch.urls import redact_url
from oafetch.works import Work

_PMH_ARXIV = re.compile(r"^oai:arxiv\.org:(.+)$", re.I)
_PMH_PMC = re.compile(r"^oai:pubmedcentral\.nih\.gov:(\d+)$", re.I)


class UnpaywallResolver(Resolver):
    """Open-access locations of a DOI, as Unpaywall knows them."""

    name: ClassVar[str] = "unpaywall"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.unpaywall.org"}
    credential: ClassVar[str | None] = "email"
    credential_env: ClassVar[tuple[str, ...]] = ("UNPAYWALL_EMAIL",)
    reports_oa_status: ClassVar[bool] = True

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        email = self.secret
        if not email:
            raise ResolverError(
                Reason.NO_CREDENTIAL,
                "unpaywall needs an email: set [resolvers.unpaywall] email, UNPAYWALL_EMAIL "
                "or mailto",
            )
        url = f"{self.base_url}/v2/{quote_path(ids.doi)}"
        try:
            data = fetch_json(http, url, params={"email": email})
        except FetchError as exc:
            if exc.http_status == 422:
                raise ResolverError(
                    Reason.BAD_REQUEST,
                    f"unpaywall refused the request (HTTP 422 from {redact_url(url)}): it "
                    "rejects placeholder emails; configure your own address",
                    http_status=422,
                    url=redact_url(url),
                ) from None
            raise
        if data is None:
            return []
        record = require_dict(data, self.name, url)
        if (message := error_body(record)) is not None:
            raise bad_response(self.name, url, f"error body: {message}")
        ids.learn(doi=text(record.get("doi")))
        ids.learn_about(
            title=record.get("title"),
            author=dig(record, "z_authors", 0, "family"),
            oa_status=record.get("oa_status"),
            authority=True,
        )
        found = Found(self.name, ids)
        locations = [record.get("best_oa_location"), *as_list(record.get("oa_locations"))]
        for location in locations:
            if isinstance(location, dict):
                self._location(location, found, ids)
        return found.result()

    @staticmethod
    def _location(location: dict[str, Any], found: Found, ids: WorkIds) -> None:
        facts: dict[str, Any] = {
            "version": location.get("version"),
            "license": location.get("license"),
            "host_type": location.get("host_type"),
        }
        pmh = text(location.get("pmh_id")) or ""
        if match := _PMH_ARXIV.match(pmh):
            ids.learn(arxiv=match[1])
        elif match := _PMH_PMC.match(pmh):
            ids.learn(pmcid=f"PMC{match[1]}")
        pdf = text(location.get("url_for_pdf"))
        landing = text(location.get("url_for_landing_page"))
        found.add(pdf, Role.ARTIFACT, **facts)
        found.add(landing, Role.LANDING, **facts)
        # ``url`` repeats one of the two; if it differs, it is most often a page.
        found.add(text(location.get("url")), Role.LANDING, **facts)
