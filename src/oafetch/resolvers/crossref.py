"""Crossref REST: ``GET /works/{doi}?mailto=…`` → the publisher's full-text links (``link[]``).

``link[]`` is optional and publisher-supplied, so each link is read for what it says it is:

* ``content-type`` decides the kind. ``application/pdf`` is a PDF file, ``…xml`` an XML file,
  ``unspecified`` a file of unknown kind (often a PDF, sometimes HTML: the download verifies the
  bytes). ``text/html`` is the article's web page: offered as a *landing page*, whose PDF link
  is followed, never as a PDF. ``text/plain`` (plain-text mining renditions) is not the full
  text oafetch stores and is skipped.
* ``intended-application`` decides the order inside a kind. ``text-mining`` and unspecified
  links first, ``similarity-checking`` ones next (often IP-restricted). ``syndication`` links
  come after every other link: they are published for syndication partners (CHORUS and the
  like, often the accepted manuscript under the partner's terms), so a text-mining or
  similarity-checking link of the work is tried before them; they are still offered, since
  for some works they are the only copy.
* Links to the Elsevier/Wiley TDM APIs need publisher keys and are skipped.
* URLs are stored as deposited XML text, and some keep their entities (``?a=1&amp;b=2``):
  ``&amp;`` is turned back into ``&`` so the query the publisher meant is fetched.

A link's licence is the ``license[]`` entry of the same ``content-version`` whose embargo
(``delay-in-days``) is over, else one deposited with ``content-version: unspecified`` (it applies
to every version). ``vor``/``am`` map to ``publishedVersion``/``acceptedVersion``. An unknown DOI
is a 404 with a plain-text body.

``updated-by[]`` lists the notices that update the work (Crossref's own and, since 2023, the
Retraction Watch records, ``source: retraction-watch``): an entry of type ``retraction``,
``withdrawal`` or ``removal`` marks the work retracted on every candidate. A correction or an
expression of concern does not. ``update-to[]`` is the other side (the record *is* a notice
about another work) and says nothing about the work asked for.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any, ClassVar

from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds, as_list, dig, quote_path, text
from oafetch.resolvers.common import Found, bad_response, fetch_json, require_dict
from oafetch.tokens import Kind, Role
from oafetch.works import Work

_VERSIONS = {"vor": "publishedVersion", "am": "acceptedVersion", "tdm": "publishedVersion"}
_KEYED_HOSTS = ("api.elsevier.com", "api.wiley.com")
#: ``updated-by`` types that take the work back.
RETRACTING_UPDATES = frozenset({"retraction", "withdrawal", "removal"})
# ``&amp;`` possibly escaped more than once (``&amp;amp;``), and its numeric forms.
_AMP = re.compile(r"&(?:amp;)+|&#0*38;|&#x0*26;", re.I)
# Order of ``intended-application`` values inside one content kind (unknown values: 1).
_APPLICATION_RANK = {"text-mining": 0, "": 0, "unspecified": 0, "similarity-checking": 1}


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
        ids.learn_about(title=dig(message, "title", 0), author=dig(message, "author", 0, "family"))
        licences = _licences(message)
        found = Found(self.name, ids, retracted=retracted_by_update(message))
        links = [link for link in as_list(message.get("link")) if isinstance(link, dict)]
        for link in sorted(links, key=_rank):
            link_url = unescape_amp(text(link.get("URL")))
            if link_url is None or any(h in link_url.lower() for h in _KEYED_HOSTS):
                continue
            shape = link_shape(text(link.get("content-type")))
            if shape is None:
                continue  # plain text: not a full text oafetch stores
            role, kind = shape
            version = text(link.get("content-version")) or "vor"
            found.add(
                link_url,
                role,
                kind=kind,
                version=_VERSIONS.get(version, version),
                license=licences.get(version) or licences.get("unspecified"),
                host_type="publisher",
            )
        return found.result()


def retracted_by_update(message: dict[str, Any]) -> bool | None:
    """``True`` when an ``updated-by`` notice retracts, withdraws or removes the work; ``None``
    otherwise (Crossref lists notices only when one was deposited: silence is not a "no")."""
    for update in as_list(message.get("updated-by")):
        if isinstance(update, dict):
            kind = (text(update.get("type")) or "").lower().replace("-", "_")
            if kind in RETRACTING_UPDATES:
                return True
    return None


def unescape_amp(url: str | None) -> str | None:
    """``url`` with HTML-escaped ampersands (``&amp;``, ``&#38;``) turned back into ``&``.

    Only the ampersand is unescaped: a full ``html.unescape`` would also turn a query such as
    ``?a=1&copy=2`` into ``?a=1©=2``.
    """
    return _AMP.sub("&", url) if url else url


def link_shape(content_type: str | None) -> tuple[Role, Kind | None] | None:
    """How to offer a link of this ``content-type``: (role, kind), or ``None`` to skip it.

    ``text/html`` is a landing page, ``text/plain`` is skipped, PDF and XML are files of that
    kind, anything else (``unspecified``, missing) is a file of unknown kind.
    """
    ctype = (content_type or "unspecified").lower()
    if "pdf" in ctype:
        return Role.ARTIFACT, Kind.PDF
    if "html" in ctype:
        return Role.LANDING, Kind.HTML
    if ctype.startswith("text/plain"):
        return None
    if "xml" in ctype:
        return Role.ARTIFACT, Kind.XML
    return Role.ARTIFACT, None


def _rank(link: dict[str, Any]) -> tuple[int, int, int]:
    """Syndication links last; then by kind (PDF, unknown, XML/HTML); then by application."""
    ctype = (text(link.get("content-type")) or "").lower()
    use = (text(link.get("intended-application")) or "").lower()
    kind = 0 if "pdf" in ctype else 2 if ("xml" in ctype or "html" in ctype) else 1
    return (1 if use == "syndication" else 0, kind, _APPLICATION_RANK.get(use, 1))


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
