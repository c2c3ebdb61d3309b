"""arXiv: ``GET /api/query?id_list={id}`` (Atom) confirms the id; the file is ``/pdf/{id}``.

The API has no DOI lookup, so this source applies once an arXiv id is known: given, read from a
``10.48550/arXiv.…`` DOI, or learnt by an earlier tier (Unpaywall, OpenAlex, S2). Errors come
back as an Atom feed with one entry titled "Error" (with HTTP 400 or 200: ``bad-response``);
an empty feed means the id does not exist (no candidates). The PDF URL carries the version
only when the user asked for one, so arxiv.org serves the latest; the ``/abs/`` page is not
offered (it only links the same PDF, and arxiv.org asks for 15 s between requests). The
entry's ``<arxiv:doi>`` is learnt.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import ClassVar

from oafetch.errors import FetchError
from oafetch.http.client import HttpClient
from oafetch.identifiers import arxiv_of_doi
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, text
from oafetch.resolvers.common import Found, bad_response, fetch_xml
from oafetch.tokens import Kind, Role
from oafetch.works import IdKind, Work

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
_VERSION = re.compile(r"v\d+$")


def arxiv_id(work: Work, ids: WorkIds) -> str | None:
    """The arXiv id known for the work (with the version the user gave, if any)."""
    if work.kind is IdKind.ARXIV:
        return work.value
    return ids.arxiv or arxiv_of_doi(ids.doi)


class ArxivResolver(Resolver):
    """The arXiv PDF of a work with a known arXiv id."""

    name: ClassVar[str] = "arxiv"
    endpoints: ClassVar[dict[str, str]] = {
        "base_url": "https://export.arxiv.org",
        "files_url": "https://arxiv.org",
    }

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return arxiv_id(work, ids) is not None

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        wanted = arxiv_id(work, ids)
        assert wanted is not None
        bare = _VERSION.sub("", wanted)
        url = f"{self.base_url}/api/query"
        try:
            root = fetch_xml(
                http, url, source=self.name, params={"id_list": bare, "max_results": "1"}
            )
        except FetchError as exc:
            if exc.http_status == 400:  # the error feed comes with a 400 for a malformed id
                raise bad_response(
                    self.name, url, f"error feed (HTTP 400) for id {bare!r}"
                ) from None
            raise
        if root is None:
            return []
        if root.tag != f"{ATOM}feed":
            raise bad_response(self.name, url, f"expected an Atom feed, got <{root.tag}>")
        entries = root.findall(f"{ATOM}entry")
        for entry in entries:
            title = (entry.findtext(f"{ATOM}title") or "").strip()
            entry_id = (entry.findtext(f"{ATOM}id") or "").strip()
            if title.lower() == "error" or "/api/errors" in entry_id:
                summary = " ".join((entry.findtext(f"{ATOM}summary") or "").split())
                raise bad_response(self.name, url, f"error feed: {summary[:200] or title}")
        match = _matching(entries, bare)
        if match is None:
            return []
        entry = match
        ids.learn(arxiv=bare, doi=text(entry.findtext(f"{ARXIV}doi")))
        first = (entry.findtext(f"{ATOM}author/{ATOM}name") or "").split()
        ids.learn_about(title=entry.findtext(f"{ATOM}title"), author=first[-1] if first else None)
        found = Found(self.name)
        found.add(
            f"{self.urls['files_url']}/pdf/{wanted}",
            Role.ARTIFACT,
            kind=Kind.PDF,
            version="submittedVersion",
            host_type="repository",
            license=_licence(entry),
        )
        return found.result()


def _matching(entries: list[ET.Element], bare: str) -> ET.Element | None:
    """The entry whose ``<id>`` (``http://arxiv.org/abs/{id}vN``) names ``bare``."""
    for entry in entries:
        entry_id = (entry.findtext(f"{ATOM}id") or "").strip()
        tail = entry_id.split("/abs/", 1)[-1]
        if _VERSION.sub("", tail).lower() == bare.lower():
            return entry
    return None


def _licence(entry: ET.Element) -> str | None:
    for link in entry.findall(f"{ATOM}link"):
        if link.get("rel") == "license":
            return link.get("href")
    return text(entry.findtext(f"{ARXIV}license"))
