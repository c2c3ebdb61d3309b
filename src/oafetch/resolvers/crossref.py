"""Crossref REST: ``GET /works/{doi}?mailto=…`` → the publisher's full-text links (``link[]``).

``link[]`` is optional and publisher-supplied: ``application/pdf`` links come first, then
``unspecified`` ones (they often serve HTML; the download verifies the bytes). Links to the
Elsevier/Wiley TDM APIs need publisher keys and are skipped; ``similarity-checking`` links
(often IP-restricted) go last. A link's licence is the ``license[]`` entry of the same
``content-version`` whose embargo (``delay-in-days``) is over; ``vor``/``am`` map to
``publishedVersion``/``acceptedVersion``. An unknown DOI is a 404 with a plain-text body.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, dig, quote_path, text
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_VERSIONS = {"vor": "publishedVersion", "am": "acceptedVersion", "tdm": "publishedVersion"}
_KEYED_HOSTS = ("api.elsevier.com", "api.wiley.com")


class CrossrefResolver(Resolver):
    """Full-text links a publisher deposited with Crossref."""

    name: ClassVar[str] = "crossref"
    endpoints: ClassVar[dict[str, str]] = {"base_url": "https://api.crossref.org"}

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return ids.doi is not None

    @property
    def mailto(self) -> str | None:
        """The polite-pool address: settings, ``CROSSREF_MAILTO``, else the run's mailto."""
        return self.settings.email or os.environ.get("CROSSREF_MAILTO") or self.config.mailto

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        assert ids.doi is not None
        url = f"{self.base_url}/works/{quote_path(ids.doi)}"
        params = {"mailto": self.mailto} if self.mailto else None
        data = fetch_json(http, url, params=params)
        if data is None:
            return []
        envelope = require_dict(data, self.name, url)
        status = text(envelope.get("status"))
        message = envelope.get("message")
        if status not in (None, "ok") or not isinstance(message, dict):
            detail = message if isinstance(message, str | list) else status
            raise bad_response(self.name, url, f"error body: {str(detail)[:200]}")
        ids.learn(doi=text(message.get("DOI")))
        licences = _licences(message)
        found = Found(self.name, ids)
        links = [link for link in as_list(message.get("link")) if isinstance(link, dict)]
        for link in sorted(links, key=_rank):
            link_url = text(link.get("URL"))
            if link_url is None or any(h in link_url.lower() for h in _KEYED_HOSTS):
                continue
            version = text(link.get("content-version")) or "vor"
            ctype = (text(link.get("content-type")) or "unspecified").lower()
            kind = Kind.PDF if "pdf" in ctype else Kind.XML if "xml" in ctype else None
            found.add(
                link_url,
                Role.ARTIFACT,
                kind=kind,
                version=_VERSIONS.get(version, version),
                license=licences.get(version),
                host_type="publisher",
            )
        return found.result()


def _rank(link: dict[str, Any]) -> tuple[int, int]:
    ctype = (text(link.get("content-type")) or "").lower()
    use = (text(link.get("intended-application")) or "").lower()
    return (
        0 if "pdf" in ctype else 2 if ("xml" in ctype or "html" in ctype) else 1,
        1 if use == "similarity-checking" else 0,
    )


def _licences(message: dict[str, Any]) -> dict[str, str]:
    """Licence URL per content version, for licences whose embargo is over."""
    published = _date(message)
    today = dt.date.today()
    out: dict[str, str] = {}
    for item in as_list(message.get("license")):
        url = text(dig(item, "URL"))
        if url is None:
            continue
        delay = dig(item, "delay-in-days")
        if (
            isinstance(delay, int)
            and delay > 0
            and published is not None
            and published + dt.timedelta(days=delay) > today
        ):
            continue  # still under embargo
        out.setdefault(text(dig(item, "content-version")) or "vor", url)
    return out


def _date(message: dict[str, Any]) -> dt.date | None:
    parts = dig(message, "issued", "date-parts", 0) or dig(message, "created", "date-parts", 0)
    if not isinstance(parts, list) or not parts or not all(isinstance(p, int) for p in parts):
        return None
    year, month, day = [*parts, 1, 1][:3]
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
