"""OSF preprints: ``GET /v2/preprints/{guid}/`` → ``primary_file`` → the file's download link.

The GUID is the DOI's ``osf.io/{guid}`` suffix (PsyArXiv, SocArXiv and the other OSF preprint
servers; a ``_vN`` version suffix is dropped). The preprint's
``relationships.primary_file.links.related.href`` is fetched and its ``data.links.download``
is the file. Only a PDF becomes a PDF candidate: the file's ``attributes.name`` must end in
``.pdf`` (many preprints' primary file is a ``.docx``; those give no candidate), and a file
without a name is offered with no kind, for the download to judge by its bytes. A withdrawn
preprint has a null ``primary_file`` (no candidates). The API wants a trailing slash (without
one it answers 301).
"""

from __future__ import annotations

import re
from typing import ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, dig, text
from oafetch.resolvers.common import (
    UNKNOWN_KIND,
    Found,
    bad_response,
    error_body,
    fetch_json,
    is_http_url,
    require_dict,
)
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_GUID = re.compile(r"^10\.\d{4,9}/osf\.io/([a-z0-9]{5,})(?:_v\d+)?$", re.I)


def osf_guid(doi: str | None) -> str | None:
    """The OSF GUID of a preprint DOI (``10.31234/osf.io/abcde`` → ``abcde``)."""
    match = _GUID.match(doi or "")
    return match[1].lower() if match else None


class OsfResolver(Resolver):
    """The primary file of an OSF preprint."""

    name: ClassVar[str] = "osf"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.osf.io"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return osf_guid(ids.doi) is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        guid = osf_guid(ids.doi)
        assert guid is not None
        url = f"{self.base_url}/v2/preprints/{guid}/"
        data = fetch_json(http, url)
        if data is None:
            return []
        preprint = require_dict(data, self.name, url)
        if (message := error_body(preprint)) is not None or "errors" in preprint:
            raise bad_response(self.name, url, f"error body: {message or preprint['errors']}")
        if text(dig(preprint, "data", "attributes", "date_withdrawn")):
            return []
        file_url = text(
            dig(preprint, "data", "relationships", "primary_file", "links", "related", "href")
        )
        if file_url is None or not is_http_url(file_url):
            return []  # withdrawn or no file
        file_data = fetch_json(http, file_url)
        if file_data is None:
            return []
        entity = require_dict(file_data, self.name, file_url)
        download = text(dig(entity, "data", "links", "download"))
        file_name = text(dig(entity, "data", "attributes", "name"))
        if file_name is not None and not file_name.lower().endswith(".pdf"):
            return []  # a .docx (or other) primary file: not a PDF, not the full text we store
        found = Found(self.name, ids)
        found.add(
            download,
            Role.ARTIFACT,
            kind=Kind.PDF if file_name is not None else UNKNOWN_KIND,
            version="submittedVersion",
            host_type="repository",
        )
        return found.result()
