"""What a resolver is: a small class that turns a work into candidate URLs.

A resolver asks one source (an API, a landing page, an archive) and returns
:class:`Candidate` objects; it never downloads the full text itself — the fallback orchestrator
does, so every body goes through the same verification. Resolvers parse the real response
shapes defensively (a missing field, ``null``, ``"Y"`` for true, a scalar where a list was
expected) and raise :class:`~oafetch.errors.ResolverError` with a reason for an unusable answer
(invalid JSON, an error body), so "the source failed" is never confused with "no OA copy".
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote, unquote

from oafetch.config import Config, ResolverSettings
from oafetch.errors import FetchError
from oafetch.http.client import HttpClient
from oafetch.identifiers import arxiv_of_doi, bare_arxiv, normalise_arxiv
from oafetch.tokens import Kind, Reason, Role
from oafetch.urls import canonical_url, host_of
from oafetch.works import IdKind, Work

#: The OA statuses Unpaywall and OpenAlex report (``open_access.oa_status``).
OA_STATUSES = frozenset({"diamond", "gold", "hybrid", "bronze", "green", "closed"})


@dataclass(frozen=True)
class Candidate:
    """A URL that may deliver the work's full text.

    ``role`` is ``artifact`` for a file URL and ``landing`` for an HTML page that links to it.
    ``origin`` is the host that named the URL (set by the orchestrator: the source's API host,
    or the page a link was found on); a public origin may not send oafetch to a private
    address (SSRF). URLs the user gave have no origin. ``retracted`` is what the source says
    about the work (``None``: it says nothing); ``md5`` is the file's checksum as the source
    lists it (Zenodo), which the download verifies.
    """

    url: str
    source: str
    role: Role = Role.ARTIFACT
    kind: Kind | None = None
    version: str | None = None
    license: str | None = None
    host_type: str | None = None
    origin: str | None = None
    retracted: bool | None = None  # the source marks the work retracted (PMC's OA service)
    md5: str | None = None  # the source's checksum of the file; the download must match it


@dataclass
class WorkIds:
    """Every identifier known for a work; resolvers of earlier tiers fill it for later ones."""

    doi: str | None = None
    arxiv: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    openalex: str | None = None
    url: str | None = None
    urls: list[str] = field(default_factory=list)  # candidate URLs earlier sources reported
    # What OpenAlex has cached for content.openalex.org ("pdf", "grobid_xml"); None: not known.
    openalex_content: frozenset[str] | None = None
    # What the sources said the work is (for the identity check of a stored PDF): its title
    # and first author's family name, first source to say wins.
    title: str | None = None
    author: str | None = None
    # The OA status the first source to tell reported (Unpaywall/OpenAlex ``oa_status``):
    # what the learned order keys the remaining sources by.
    oa_status: str | None = None
    _oa_authority: bool = field(default=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def of(cls, work: Work) -> WorkIds:
        ids = cls()
        attr = {
            IdKind.DOI: "doi",
            IdKind.ARXIV: "arxiv",
            IdKind.PMID: "pmid",
            IdKind.PMCID: "pmcid",
            IdKind.OPENALEX: "openalex",
            IdKind.URL: "url",
        }[work.kind]
        setattr(ids, attr, work.value)
        if work.kind is IdKind.DOI:
            ids.arxiv = arxiv_of_doi(work.value)  # an arXiv DOI: arXiv is asked too
        return ids

    def note_urls(self, urls: list[str]) -> None:
        """Remember candidate URLs (for archive lookups of a later tier)."""
        with self._lock:
            known = {canonical_url(u) for u in self.urls}
            for url in urls:
                if (key := canonical_url(url)) not in known:
                    known.add(key)
                    self.urls.append(url)

    def learn(self, **found: str | None) -> None:
        """Record identifiers a source reported (first value wins; normalised lightly).

        A learnt arXiv id is normalised and bare (no version: the latest is wanted); a learnt
        arXiv DOI teaches the arXiv id too.
        """
        with self._lock:
            for key, value in found.items():
                if not value or not isinstance(value, str) or getattr(self, key, "x") is not None:
                    continue
                value = value.strip()
                if key == "doi":
                    value = value.lower().removeprefix("https://doi.org/").removeprefix("doi:")
                    if self.arxiv is None and (arxiv := arxiv_of_doi(value)) is not None:
                        self.arxiv = bare_arxiv(arxiv)
                elif key == "arxiv":
                    normalised = normalise_arxiv(value)
                    if normalised is None:
                        continue
                    value = bare_arxiv(normalised)
                elif key == "pmcid":
                    value = value.upper() if value.upper().startswith("PMC") else f"PMC{value}"
                elif key == "openalex":
                    value = value.rsplit("/", 1)[-1].upper()
                setattr(self, key, value)

    def learn_about(
        self,
        *,
        title: Any = None,
        author: Any = None,
        oa_status: Any = None,
        authority: bool = False,
    ) -> None:
        """Record the work's title, first author's family name and OA status as a source
        reported them (first non-empty string wins, but the ``authority``'s OA status —
        Unpaywall's, whose classification OpenAlex follows — replaces another's; other types
        and unknown OA statuses are ignored)."""
        with self._lock:
            status = oa_status.strip().lower() if isinstance(oa_status, str) else None
            if status in OA_STATUSES and not self._oa_authority:
                if self.oa_status is None or authority:
                    self.oa_status = status
                self._oa_authority = authority
            if self.title is None and isinstance(title, str) and title.strip():
                self.title = " ".join(title.split())[:500]
            if self.author is None and isinstance(author, str) and author.strip():
                self.author = " ".join(author.split())[:100]

    def learn_content(self, kinds: frozenset[str]) -> None:
        """Record what OpenAlex has cached for this work (first answer wins)."""
        with self._lock:
            if self.openalex_content is None:
                self.openalex_content = kinds


class Resolver(ABC):
    """One source. Subclasses set ``name`` and ``endpoints`` and implement two methods.

    ``endpoints`` maps every URL key the source uses to its default (``base_url`` is the primary
    API base); ``[resolvers.<name>]`` in ``oafetch.toml`` may override each one. ``options``
    names the source's other settings (each one's rule, for messages). ``credential`` names the
    setting the source cannot work without (``email`` or ``api_key``), if any. A source with
    ``default_enabled = False`` runs only when its table says ``enabled = true`` (a source that
    costs money is never switched on by accident).
    """

    name: ClassVar[str]
    endpoints: ClassVar[Mapping[str, str]] = {}
    options: ClassVar[Mapping[str, str]] = {}
    credential: ClassVar[str | None] = None
    credential_env: ClassVar[tuple[str, ...]] = ()
    throttle_statuses: ClassVar[frozenset[int]] = frozenset()
    default_enabled: ClassVar[bool] = True
    #: The source reports the work's OA status (the learned order keys later sources by it).
    reports_oa_status: ClassVar[bool] = False

    def __init__(self, settings: ResolverSettings, config: Config) -> None:
        self.settings = settings
        self.config = config
        extra: dict[str, Any] = dict(settings.model_extra or {})
        self.urls = {
            k: str(extra.get(k, v)).rstrip("/")
            for k, v in self.endpoints.items()
            if k != "base_url"
        }
        self.base_url = (settings.base_url or self.endpoints.get("base_url", "")).rstrip("/")

    @classmethod
    def configured_secret(cls, config: Config) -> str | None:
        """The credential ``config`` gives this source (settings, then environment), if any."""
        return credential_for(cls, config)

    @property
    def secret(self) -> str | None:
        """This source's credential (settings, then its environment variables), if any."""
        return self.configured_secret(self.config)

    @property
    def api_host(self) -> str:
        """The host of the source's primary API (for breaker/rate gates)."""
        return host_of(self.base_url)

    def note(self) -> str | None:
        """One line the run logs when it starts (a missing optional key …), or ``None``."""
        return None

    def before_fetch(self, candidate: Candidate) -> None:
        """Called by the fallback chain right before it downloads one of this source's
        candidates, on the work's thread. A billed source charges its spending cap here.

        Raises:
            FetchError: refuse the download (``spend-cap``); the chain goes on without it.
        """
        return None  # free sources have nothing to charge

    def spending(self) -> dict[str, Any] | None:
        """What this source spent in the run (for ``summary.json``), or ``None`` if free."""
        return None

    @abstractmethod
    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        """Whether this source can say anything about the work with the ids known so far."""

    @abstractmethod
    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        """Ask the source; return candidate URLs (empty: the source has no OA copy).

        Raises:
            FetchError / ResolverError: the source could not be asked or answered unusably.
        """


def quote_path(value: str) -> str:
    """Percent-encode an identifier for use inside a URL path (keeps ``/`` and ``:``).

    Every segment is quoted; a ``.`` or ``..`` segment is refused, since URL resolution would
    make it climb out of the API's path (``10.1234/../../admin`` → ``/admin``).

    Raises:
        FetchError: the identifier has a dot segment (``bad-input``, not retried).
    """
    segments = value.split("/")
    if any(seg in (".", "..") or unquote(seg) in (".", "..") for seg in segments):
        raise FetchError(
            Reason.BAD_INPUT,
            f"identifier {value!r} has a '.' or '..' segment; it is never put into a URL path",
        )
    return "/".join(quote(seg, safe=":;()") for seg in segments)


def as_list(value: Any) -> list[Any]:
    """A field that is sometimes a scalar, sometimes a list, sometimes missing → a list."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def truthy(value: Any) -> bool:
    """``True``, ``"Y"``, ``"true"``, ``1`` → True; everything else False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("y", "yes", "true", "1", "t")
    return False


def text(value: Any) -> str | None:
    """A non-empty string or ``None`` (for fields that may be null, empty or the wrong type)."""
    return value.strip() or None if isinstance(value, str) else None


def dig(data: Any, *path: str | int) -> Any:
    """``data[p0][p1]…`` or ``None`` if any step is missing or the wrong type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or len(data) <= step:
                return None
            data = data[step]
        elif isinstance(data, dict):
            data = data.get(step)
        else:
            return None
    return data


def credential_for(cls: type[Resolver], config: Config) -> str | None:
    """The configured credential of a source: its settings, else its conventional env vars."""
    settings = config.resolver(cls.name)
    if cls.credential == "api_key" and settings.api_key is not None:
        return settings.api_key.get_secret_value() or None
    if cls.credential == "email" and settings.email:
        return settings.email
    for var in cls.credential_env:
        if os.environ.get(var):
            return os.environ[var]
    if cls.credential == "email":
        return config.mailto
    return None
