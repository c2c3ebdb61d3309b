"""The Internet Archive's Wayback Machine: archived copies of URLs the work once had.

What is looked up, most promising first and at most :data:`MAX_LOOKUPS` URLs: the URLs earlier
sources reported (``ids.urls``; PDF-looking ones first), the input URL, and the DOI's
``https://doi.org/…`` URL. For each, the availability API (``{base_url}/wayback/available``)
names the closest capture; when it has none that answered 200 (or a redirect, for doi.org),
the CDX API (``{cdx_url}/cdx/search/cdx``, filtered to 200 PDF captures) is asked. A capture
becomes ``{web_url}/web/{timestamp}id_/{original}`` — the ``id_`` form serves the raw archived
bytes, without the toolbar page. The search stops at the first archived PDF-looking URL.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, dig, text
from oafetch.resolvers.common import Found, bad_response, fetch_json, is_http_url, require_dict
from oafetch.tokens import Role
from oafetch.urls import host_of, strip_secrets
from oafetch.works import IdKind, Work

MAX_LOOKUPS = 4
_PLAYBACK = re.compile(r"/web/(\d{1,14})(?:[a-z]{2}_)?/(.+)$")
_OK_STATUS = re.compile(r"^(?:2\d\d|3\d\d|-)?$")


class WaybackResolver(Resolver):
    """Archived captures of the work's PDF or landing page."""

    name: ClassVar[str] = "wayback"
    endpoints: ClassVar[dict[str, str]] = {
        "base_url": "https://archive.org",
        "cdx_url": "https://web.archive.org",
        "web_url": "https://web.archive.org",
    }

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return bool(self.lookups(work, ids))

    def lookups(self, work: Work, ids: WorkIds) -> list[str]:
        """The URLs worth asking about, most promising first."""
        # Archive URLs are no use, and DOI-resolver URLs are looked up once, as doi.org.
        skip = {
            host_of(self.base_url),
            host_of(self.urls["web_url"]),
            host_of(self.urls["cdx_url"]),
            "web.archive.org",
            "archive.org",
            "doi.org",
            "dx.doi.org",
            host_of(self.config.resolver("landing_page").base_url or ""),
        }
        seen = [u for u in ids.urls if is_http_url(u) and host_of(u) not in skip]
        seen.sort(key=lambda u: 0 if _pdfish(u) else 1)
        urls = seen[: MAX_LOOKUPS - 1]
        if work.kind is IdKind.URL and work.value not in urls:
            urls.insert(0, work.value)
        if ids.doi:
            urls.append(f"https://doi.org/{ids.doi}")
        # The archive is a third party: it is told the URL without the user's credentials
        # (an archived copy never carries them anyway).
        return list(dict.fromkeys(strip_secrets(u) for u in urls))[:MAX_LOOKUPS]

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        found = Found(self.name)
        for url in self.lookups(work, ids):
            capture = self._available(url, http)
            if capture is None and not _is_doi_url(url):
                capture = self._cdx(url, http)
            if capture is None:
                continue
            timestamp, original = capture
            pdfish = _pdfish(url) or _pdfish(original)
            found.add(
                f"{self.urls['web_url']}/web/{timestamp}id_/{original}",
                Role.ARTIFACT if pdfish else Role.LANDING,
                host_type="archive",
            )
            if pdfish:
                break
        return found.result()

    def _available(self, url: str, http: HttpClient) -> tuple[str, str] | None:
        """(timestamp, original URL) of the closest usable capture, per the availability API."""
        api = f"{self.base_url}/wayback/available"
        data = fetch_json(http, api, params={"url": url})
        if data is None:
            return None
        body = require_dict(data, self.name, api)
        if "archived_snapshots" not in body:
            raise bad_response(self.name, api, f"no archived_snapshots in {str(body)[:120]}")
        closest = dig(body, "archived_snapshots", "closest")
        if not isinstance(closest, dict) or closest.get("available") is False:
            return None
        status = text(str(closest.get("status") or "")) or ""
        if not _OK_STATUS.match(status) or (status.startswith("3") and not _is_doi_url(url)):
            return None
        timestamp = text(str(closest.get("timestamp") or ""))
        original = url
        if (playback := _PLAYBACK.search(text(closest.get("url")) or "")) is not None:
            timestamp = timestamp or playback[1]
            original = playback[2] if is_http_url(playback[2]) else url
        if not timestamp or not timestamp.isdigit():
            return None
        return timestamp, original

    def _cdx(self, url: str, http: HttpClient) -> tuple[str, str] | None:
        """(timestamp, original) of the latest 200 PDF capture, per the CDX API."""
        api = f"{self.urls['cdx_url']}/cdx/search/cdx"
        query = urlencode(
            [
                ("url", url),
                ("output", "json"),
                ("filter", "statuscode:200"),
                ("filter", "mimetype:application/pdf"),
                ("limit", "-1"),
            ]
        )
        data = fetch_json(http, f"{api}?{query}")
        if data is None or data == []:
            return None
        if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
            raise bad_response(self.name, api, "expected a JSON array of rows")
        header, rows = data[0], data[1:]
        if not rows:
            return None
        columns = {str(name): i for i, name in enumerate(header)}
        row = rows[-1]
        timestamp = _cell(row, columns.get("timestamp", 1))
        original = _cell(row, columns.get("original", 2))
        if timestamp is None or not timestamp.isdigit() or original is None:
            return None
        return timestamp, original if is_http_url(original) else url


def _cell(row: list[Any], index: int) -> str | None:
    return text(row[index]) if 0 <= index < len(row) else None


def _pdfish(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.endswith(".pdf") or "/pdf" in path or "pdf=" in urlsplit(url).query.lower()


def _is_doi_url(url: str) -> bool:
    return host_of(url) in ("doi.org", "dx.doi.org")
