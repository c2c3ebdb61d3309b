"""NCBI PMC: ID Converter → OA web service → the PMC cloud copy.

1. The PMCID is the one given or learnt, else the ID Converter's answer for the DOI or PMID
   (``records[].status == "error"``: not in PMC, no candidates; ``pmid`` may be an int or a
   string).
2. The OA web service (``oa.fcgi?id=PMC…``) says whether the article is in the open-access
   subset: an ``<error code="idIsNotOpenAccess">`` (or ``idDoesNotExist``) means no candidates.
3. The file comes from the PMC cloud layout ``{cloud_url}/PMC{n}.{ver}/PMC{n}.{ver}.pdf``
   (version 1: every version keeps its folder, and the API names none). The OA service's
   legacy ``ftp://`` PDF href follows, rewritten to ``{ftp_url}/…`` (those files are being
   withdrawn, so it is the second choice). The legacy ``/articles/PMC…/pdf/`` pages serve bot
   walls and are never used.

``NCBI_API_KEY`` (optional) is sent as ``api_key``; ``tool``/``email`` identify the client.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, ClassVar
from urllib.parse import urlsplit

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, WorkIds, as_list, text
from oafetch.resolvers.common import (
    Found,
    OptionalKeyResolver,
    bad_response,
    fetch_json,
    fetch_xml,
    require_dict,
    same_doi,
)
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_NOT_OA = {"idisnotopenaccess", "iddoesnotexist", "idisnotavailable"}


class PmcResolver(OptionalKeyResolver):
    """The open-access PDF of an article in PubMed Central."""

    name: ClassVar[str] = "pmc"
    endpoints: ClassVar[dict[str, str]] = {
        "base_url": "https://pmc.ncbi.nlm.nih.gov",
        "idconv_url": "https://pmc.ncbi.nlm.nih.gov/tools/idconv/api/v1/articles",
        "oa_url": "https://www.ncbi.nlm.nih.gov/pmc/utils/oa/oa.fcgi",
        "cloud_url": "https://pmc-oa-opendata.s3.amazonaws.com",
        "ftp_url": "https://ftp.ncbi.nlm.nih.gov",
    }
    credential_env: ClassVar[tuple[str, ...]] = ("NCBI_API_KEY",)

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return bool(ids.pmcid or ids.doi or ids.pmid)

    def _params(self, **extra: str) -> dict[str, str]:
        params = {**extra, "tool": "oafetch"}
        if self.config.mailto:
            params["email"] = self.config.mailto
        if (key := self.secret) is not None:
            params["api_key"] = key
        return params

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        pmcid = ids.pmcid or self._convert(ids, http)
        if pmcid is None:
            return []
        record = self._oa_record(pmcid, http)
        if record is None:
            return []
        facts: dict[str, Any] = {
            "license": record.get("license"),
            "host_type": "repository",
            "version": "publishedVersion",
        }
        found = Found(self.name)
        number = f"{pmcid}.1"
        found.add(
            f"{self.urls['cloud_url']}/{number}/{number}.pdf", Role.ARTIFACT, kind=Kind.PDF, **facts
        )
        for link in record.findall("link"):
            if (link.get("format") or "").lower() == "pdf":
                found.add(
                    self._rewrite(link.get("href") or ""), Role.ARTIFACT, kind=Kind.PDF, **facts
                )
        return found.result()

    def _convert(self, ids: WorkIds, http: HttpClient) -> str | None:
        """The PMCID the ID Converter gives for the work's DOI or PMID (learning the others)."""
        wanted = ids.doi or ids.pmid
        assert wanted is not None
        url = f"{self.urls['idconv_url']}/"
        data = fetch_json(http, url, params=self._params(ids=wanted, format="json"))
        if data is None:
            return None
        body = require_dict(data, self.name, url)
        status = text(body.get("status"))
        if status not in (None, "ok"):
            raise bad_response(self.name, url, f"error body: {str(body.get('message'))[:200]}")
        for record in as_list(body.get("records")):
            if not isinstance(record, dict) or text(record.get("status")) == "error":
                continue
            pmcid = text(record.get("pmcid"))
            if pmcid is None:
                continue
            if ids.doi and record.get("doi") is not None and not same_doi(record["doi"], ids.doi):
                continue
            pmid = record.get("pmid")
            ids.learn(
                pmcid=pmcid,
                doi=text(record.get("doi")),
                pmid=str(pmid) if isinstance(pmid, str | int) else None,
            )
            return ids.pmcid
        return None

    def _oa_record(self, pmcid: str, http: HttpClient) -> ET.Element | None:
        """The OA service's ``<record>`` for ``pmcid``, or ``None`` if it is not open access."""
        url = self.urls["oa_url"]
        root = fetch_xml(http, url, source=self.name, params=self._params(id=pmcid))
        if root is None:
            return None
        if root.tag != "OA":
            raise bad_response(self.name, url, f"expected <OA>, got <{root.tag}>")
        error = root.find("error")
        if error is not None:
            code = (error.get("code") or "").lower()
            if code in _NOT_OA:
                return None
            raise bad_response(
                self.name, url, f"OA service error {code!r}: {(error.text or '').strip()[:200]}"
            )
        for record in root.iter("record"):
            if (record.get("id") or "").upper().split(".")[0] == pmcid.upper():
                return record
        return None

    def _rewrite(self, href: str) -> str:
        """``ftp://ftp.ncbi.nlm.nih.gov/pub/…`` → ``{ftp_url}/pub/…`` (served over HTTPS)."""
        href = href.strip()
        if not href.lower().startswith("ftp://"):
            return href
        parts = urlsplit(href)
        return f"{self.urls['ftp_url']}{parts.path}"
