"""NCBI PMC: ID Converter → OA web service → the PMC cloud copy.

1. The ID Converter (``versions=yes``) is asked for the work's PMCID, DOI or PMID. Its record
   names the PMCID and every version of the article, the current one marked
   ``"current": "true"``. A record with ``status: error`` and ``Identifier not found in PMC``
   means the work is not in PMC (no candidates); any other error message (``invalid article
   id``, an ID of the wrong type, a top-level ``status: error``) is the API refusing the
   question and becomes a ``bad-request`` error carrying the API's message, not a silent
   "unknown". ``pmid`` may be an int or a string.
2. The OA web service (``oa.fcgi?id=PMC…``) says whether the article is in the open-access
   subset: an ``<error code="idIsNotOpenAccess">`` (or ``idDoesNotExist``) means no candidates.
   Its ``retracted="yes"`` is carried on the candidates (and so into the manifest row).
3. The file comes from the PMC cloud layout ``{cloud_url}/PMC{n}.{ver}/PMC{n}.{ver}.pdf`` with
   the *current* version (version 1 when the converter names none: every version keeps its
   folder). The OA service's legacy ``ftp://`` PDF href follows, rewritten to ``{ftp_url}/…``
   (those files are being withdrawn, so it is the second choice). The legacy
   ``/articles/PMC…/pdf/`` pages serve bot walls and are never used.

When the PMCID is already known (given, or learnt from another source) the converter is still
asked, for the current version; if it cannot answer, version 1 is used.
``NCBI_API_KEY`` (optional) is sent as ``api_key``; ``tool``/``email`` identify the client.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from oafetch.errors import FetchError, ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, WorkIds, as_list, text, truthy
from oafetch.resolvers.common import (
    Found,
    OptionalKeyResolver,
    bad_response,
    fetch_json,
    fetch_xml,
    require_dict,
    same_doi,
)
from oafetch.tokens import Kind, Reason, Role
from oafetch.urls import redact_url
from oafetch.works import Work

_NOT_OA = {"idisnotopenaccess", "iddoesnotexist", "idisnotavailable"}
_NOT_IN_PMC = re.compile(r"not\s+found", re.I)
_VERSIONED = re.compile(r"^(PMC\d+)\.(\d+)$", re.I)


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
        known = ids.pmcid
        try:
            version = self._convert(ids, http)
        except FetchError as exc:
            # A known PMCID does not need the converter; only its version is lost.
            if known is None or exc.reason is Reason.BAD_REQUEST:
                raise
            version = None
        pmcid = ids.pmcid
        if pmcid is None:
            return []
        record = self._oa_record(pmcid, http)
        if record is None:
            return []
        retracted = (record.get("retracted") or "").strip().lower()
        facts: dict[str, Any] = {
            "license": record.get("license"),
            "host_type": "repository",
            "version": "publishedVersion",
            "retracted": {"yes": True, "no": False}.get(retracted),
        }
        found = Found(self.name)
        number = f"{pmcid}.{version or 1}"
        found.add(
            f"{self.urls['cloud_url']}/{number}/{number}.pdf", Role.ARTIFACT, kind=Kind.PDF, **facts
        )
        for link in record.findall("link"):
            if (link.get("format") or "").lower() == "pdf":
                found.add(
                    self._rewrite(link.get("href") or ""), Role.ARTIFACT, kind=Kind.PDF, **facts
                )
        return found.result()

    def _convert(self, ids: WorkIds, http: HttpClient) -> int | None:
        """Ask the ID Converter: learn the PMCID (and DOI, PMID); return the current version.

        Raises:
            ResolverError: ``bad-request`` when the converter refuses the identifier (its
                message quoted), ``bad-response`` for an unusable answer.
        """
        wanted = ids.pmcid or ids.doi or ids.pmid
        assert wanted is not None
        url = f"{self.urls['idconv_url']}/"
        params = self._params(ids=wanted, format="json", versions="yes")
        data = fetch_json(http, url, params=params)
        if data is None:
            return None
        body = require_dict(data, self.name, url)
        status = text(body.get("status"))
        if status not in (None, "ok"):
            raise _refused(url, wanted, body.get("message") or body.get("errmsg") or status)
        for record in as_list(body.get("records")):
            if not isinstance(record, dict) or not _about(record, ids):
                continue
            if text(record.get("status")) == "error":
                message = text(record.get("errmsg")) or "error"
                if _NOT_IN_PMC.search(message):
                    continue  # not in PMC: no candidates, as the API documents
                raise _refused(url, wanted, message)
            pmcid = text(record.get("pmcid"))
            if pmcid is None:
                continue
            pmid = record.get("pmid")
            ids.learn(
                pmcid=pmcid,
                doi=text(record.get("doi")),
                pmid=str(pmid) if isinstance(pmid, str | int) else None,
            )
            return current_version(record)
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


def _about(record: dict[str, Any], ids: WorkIds) -> bool:
    """Whether a converter record is about this work (no identifier it names contradicts one
    already known; an answer may carry records for other ids)."""
    pmcid, pmid, doi = text(record.get("pmcid")), record.get("pmid"), record.get("doi")
    if ids.pmcid and pmcid and pmcid.split(".")[0].upper() != ids.pmcid.upper():
        return False
    if ids.pmid and isinstance(pmid, str | int) and str(pmid) != ids.pmid:
        return False
    return not (ids.doi and doi is not None and not same_doi(doi, ids.doi))


def current_version(record: dict[str, Any]) -> int | None:
    """The version number of the record's ``versions[]`` entry marked current, if any.

    ``current`` is ``"true"`` in captured answers and sometimes a JSON ``true``; an entry's
    ``pmcid`` is ``PMC{n}.{version}``.
    """
    for entry in as_list(record.get("versions")):
        if not isinstance(entry, dict) or not truthy(entry.get("current")):
            continue
        match = _VERSIONED.match(text(entry.get("pmcid")) or "")
        if match:
            return int(match[2])
    return None


def _refused(url: str, wanted: str, message: Any) -> ResolverError:
    """The converter refused the question: ``bad-request`` with its (URL-decoded) message."""
    said = unquote(str(message)).strip()[:200]
    return ResolverError(
        Reason.BAD_REQUEST,
        f"pmc: the ID Converter refused {wanted!r}: {said} ({redact_url(url)})",
        url=redact_url(url),
    )
