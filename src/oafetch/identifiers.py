"""Identifier forms that several layers share: arXiv ids, arXiv DOIs, and the URLs naming an id.

Pure functions, no I/O. :mod:`oafetch.works` parses inputs with them; the resolvers use them to
learn ids from URLs and to build the keys they ask by.

* arXiv ids are normalised as idutils does (arXiv's "identifier for services"): new ids
  ``YYMM.NNNN[N]``; old ids ``archive/YYMMNNN`` with the subject class dropped
  (``math.GT/0309136`` → ``math/0309136``), a class prefix on a new id dropped too
  (``hep-th/1601.07616`` → ``1601.07616``). A version (``v2``) is kept where it was given and
  removed only by :func:`bare_arxiv`: the user's own id keeps the version they asked for,
  every lookup key (arXiv API, arXiv DOI, OpenAlex, S2) uses the bare id.
* arXiv DOIs are DataCite DOIs ``10.48550/arXiv.{id}``; oafetch writes them lower-case, like
  every DOI, and always without a version.
* :func:`id_from_url` maps the URLs users paste (arxiv.org ``/abs/`` and ``/pdf/``, PubMed, PMC
  on both hosts, OpenAlex web and API) to the identifier they name.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

ARXIV_DOI_PREFIX = "10.48550/arxiv."

_ARXIV_NEW = re.compile(r"^(?:[a-z][a-z\-]*(?:\.[a-z]{2})?/)?(\d{4})\.(\d{4,5})(v\d+)?$", re.I)
_ARXIV_OLD = re.compile(r"^([a-z][a-z\-]*)(?:\.[a-z]{2})?/(\d{7})(v\d+)?$", re.I)
_ARXIV_PREFIX = re.compile(r"^arxiv:\s*", re.I)
_VERSION = re.compile(r"v\d+$", re.I)
_ARXIV_HOSTS = frozenset({"arxiv.org", "www.arxiv.org", "export.arxiv.org"})
_ARXIV_PATH = re.compile(r"^/(?:abs|pdf|html)/(.+?)(?:\.pdf)?/*$", re.I)
_PUBMED_PATH = re.compile(r"^/(?:pubmed/)?(\d{1,9})/*$")
# OpenAlex writes PMC pages without the prefix (``/pmc/articles/5815332``): digits are a PMCID.
_PMC_PATH = re.compile(r"^/articles/(?:PMC)?(\d{1,9})(?:/.*)?$", re.I)
_OPENALEX_PATH = re.compile(r"^/(?:works/)?(W\d{2,12})/*$", re.I)
_NCBI_HOSTS = frozenset({"www.ncbi.nlm.nih.gov", "ncbi.nlm.nih.gov"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def normalise_arxiv(text: str) -> str | None:
    """The normalised arXiv id in ``text`` (an ``arXiv:`` prefix allowed), or ``None``.

    >>> [normalise_arxiv(t) for t in ("arXiv:math.GT/0309136v2", "2101.00001V3", "x")]
    ['math/0309136v2', '2101.00001v3', None]
    """
    value = _ARXIV_PREFIX.sub("", text.strip())
    if match := _ARXIV_NEW.match(value):
        return f"{match[1]}.{match[2]}{(match[3] or '').lower()}"
    if match := _ARXIV_OLD.match(value):
        return f"{match[1].lower()}/{match[2]}{(match[3] or '').lower()}"
    return None


def bare_arxiv(arxiv_id: str) -> str:
    """``arxiv_id`` without its version (``2101.00001v2`` → ``2101.00001``)."""
    return _VERSION.sub("", arxiv_id)


def arxiv_doi(arxiv_id: str) -> str:
    """The DataCite DOI arXiv registered for ``arxiv_id`` (lower-case, no version)."""
    return ARXIV_DOI_PREFIX + bare_arxiv(normalise_arxiv(arxiv_id) or arxiv_id).lower()


def arxiv_of_doi(doi: str | None) -> str | None:
    """The arXiv id an arXiv DOI names (``10.48550/arXiv.2101.00001`` → ``2101.00001``)."""
    if not doi or not doi.lower().startswith(ARXIV_DOI_PREFIX):
        return None
    return normalise_arxiv(doi[len(ARXIV_DOI_PREFIX) :])


def arxiv_from_url(url: str) -> str | None:
    """The arXiv id an arxiv.org ``/abs/``, ``/pdf/`` or ``/html/`` URL names (version kept)."""
    return _arxiv_of(_split(url))


def _arxiv_of(parts: tuple[str, str] | None) -> str | None:
    if parts is None or parts[0] not in _ARXIV_HOSTS:
        return None
    match = _ARXIV_PATH.match(parts[1])
    return normalise_arxiv(unquote(match[1])) if match else None


def id_from_url(url: str) -> tuple[str, str] | None:
    """``(kind, value)`` of the identifier a well-known URL names, else ``None``.

    ``kind`` is ``arxiv``, ``pmid``, ``pmcid`` or ``openalex`` (the :class:`~oafetch.works.IdKind`
    values); the scheme may be missing (``pubmed.ncbi.nlm.nih.gov/123``). Query strings and
    fragments are ignored (an ``api_key`` on an OpenAlex URL is not part of the id).

    >>> id_from_url("https://pmc.ncbi.nlm.nih.gov/articles/PMC123/")
    ('pmcid', 'PMC123')
    """
    parts = _split(url)  # once: inputs of a batch are mostly URLs or DOIs
    if parts is None:
        return None
    if (arxiv := _arxiv_of(parts)) is not None:
        return "arxiv", arxiv
    host, path = parts
    pubmed = host == "pubmed.ncbi.nlm.nih.gov" or (
        host in _NCBI_HOSTS and path.startswith("/pubmed/")
    )
    if pubmed and (match := _PUBMED_PATH.match(path)):
        return "pmid", str(int(match[1]))
    pmc_path = ""
    if host in _NCBI_HOSTS and path.lower().startswith("/pmc/"):
        pmc_path = path[4:]  # www.ncbi.nlm.nih.gov/pmc/articles/… (the old PMC site)
    elif host == "pmc.ncbi.nlm.nih.gov":
        pmc_path = path
    if match := _PMC_PATH.match(pmc_path):
        return "pmcid", f"PMC{int(match[1])}"
    if host in ("openalex.org", "www.openalex.org", "api.openalex.org") and (
        match := _OPENALEX_PATH.match(path)
    ):
        return "openalex", match[1].upper()
    return None


def _split(url: str) -> tuple[str, str] | None:
    """``(lower-case host, path)`` of ``url``, adding ``https://`` when it has no scheme."""
    text = url.strip()
    if not _SCHEME.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return host, parts.path
