"""Zenodo: ``GET /api/records/{recid}`` for a ``10.5281/zenodo.{recid}`` DOI, else a DOI search.

Other DOIs are searched with ``GET /api/records?q=doi:"…"`` (records uploaded with the
publisher's DOI). Only open records (``metadata.access_right == "open"``) count; their PDF
files (by name or mimetype; a record may list a CSV first) are the candidates. The file's bytes
are at the link ending in ``/content`` (``links.self`` in record answers, ``links.download`` in
search answers, whose ``links.self`` is the file's JSON description). ``files`` is a list, or an
object with ``entries`` in newer answers; both are read. Each file's ``checksum``
(``md5:<hex>``, bare hex in older answers) travels with its candidate: the download verifies the
bytes against it, and a mismatch is a failed candidate (``checksum-mismatch``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, dig, text
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict, same_doi
from oafetch.storage import md5_hex
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_RECORD_DOI = re.compile(r"^10\.5281/zenodo\.(\d+)$", re.I)


class ZenodoResolver(Resolver):
    """PDF files of an open Zenodo record."""

    name: ClassVar[str] = "zenodo"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://zenodo.org"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        records: list[Any]
        if match := _RECORD_DOI.match(ids.doi):
            url = f"{self.base_url}/api/records/{match[1]}"
            records = [fetch_json(http, url)]
        else:
            url = f"{self.base_url}/api/records"
            data = fetch_json(http, url, params={"q": f'doi:"{ids.doi}"', "size": "5"})
            if data is not None:
                data = require_dict(data, self.name, url)
                hits = dig(data, "hits", "hits")
                if not isinstance(hits, list):
                    raise bad_response(self.name, url, "no hits.hits list")
                records = [
                    r
                    for r in hits
                    if same_doi(dig(r, "doi"), ids.doi)
                    or same_doi(dig(r, "metadata", "doi"), ids.doi)
                ]
            else:
                records = []
        found = Found(self.name, ids)
        for record in records:
            if record is None:
                continue
            self._record(require_dict(record, self.name, url), found)
        return found.result()

    def _record(self, record: dict[str, Any], found: Found) -> None:
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        assert isinstance(metadata, dict)
        access = (
            text(metadata.get("access_right")) or text(dig(record, "access", "record")) or "open"
        ).lower()
        if access not in ("open", "public"):
            return  # restricted, embargoed or closed: no downloadable files
        licence = text(dig(metadata, "license", "id")) or text(metadata.get("license"))
        files = record.get("files")
        if isinstance(files, dict):
            entries = files.get("entries")
            files = list(entries.values()) if isinstance(entries, dict) else as_list(entries)
        for item in as_list(files):
            if not isinstance(item, dict):
                continue
            key = text(item.get("key")) or text(item.get("filename")) or ""
            links = [text(dig(item, "links", name)) for name in ("self", "content", "download")]
            urls = [u for u in links if u]
            mimetype = (text(item.get("mimetype")) or "").lower()
            if not (key.lower().endswith(".pdf") or "pdf" in mimetype):
                continue
            # the bytes: a link to ``…/content`` first, else the first link given
            link = next((u for u in urls if u.rstrip("/").endswith("/content")), None)
            found.add(
                link or (urls[0] if urls else None),
                Role.ARTIFACT,
                kind=Kind.PDF,
                license=licence,
                host_type="repository",
                md5=md5_hex(text(item.get("checksum"))),
            )
