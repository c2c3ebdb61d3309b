"""Identifier generation and normalisation for the sandbox corpus.

Generators draw from a seeded `random.Random` and never repeat a value within one corpus.
Normalisers turn the forms users and APIs write (``doi:``, ``https://doi.org/``, ``arXiv:``,
``vN`` suffixes, ``PMID:``, OpenAlex URLs) into the keys the corpus indexes by.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from urllib.parse import unquote

#: DOI prefixes registered with DataCite, unknown to Unpaywall and Crossref.
DATACITE_PREFIXES = ("10.5281", "10.6084", "10.48550")

# Archives as old-style ids name them: "math/9501255", never the subject class ("math.AG/…",
# which arXiv redirects and oafetch canonicalises to "math/…", as DataCite's DOIs do).
_OLD_ARCHIVES = ("hep-th", "hep-ph", "math", "cond-mat", "astro-ph", "quant-ph", "math-ph")
_DOI_URL = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_ARXIV_PREFIX = re.compile(r"^(?:arxiv:|https?://arxiv\.org/(?:abs|pdf)/)", re.IGNORECASE)
_ARXIV_NEW = re.compile(r"^\d{4}\.\d{4,5}$")
_ARXIV_OLD = re.compile(r"^[a-z-]+(?:\.[A-Z]{2})?/\d{7}$")
_VERSION = re.compile(r"v\d+$")


class UniqueDraw:
    """Draws values from a generator function until one is new."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def draw(self, make: Callable[[random.Random], object]) -> str:
        """Call `make(rng)` until it returns an unseen string."""
        while True:
            value = str(make(self.rng))
            if value not in self.seen:
                self.seen.add(value)
                return value


def publisher_doi(rng: random.Random, publisher_no: int, index: int, year: int) -> str:
    """A Crossref-style DOI in one of several suffix styles (some upper case, some odd chars)."""
    prefix = f"10.{5555 + 5 * (publisher_no - 1)}"
    style = rng.randrange(6)
    if style == 0:
        suffix = f"sbx.{index:05d}"
    elif style == 1:
        suffix = f"j.sbx.{year}.{index:03d}"
    elif style == 2:
        suffix = f"SBX-{year}-{index:04d}"
    elif style == 3:
        suffix = f"s{rng.randrange(10000, 99999)}-{year % 100:02d}-{index:05d}-{rng.randrange(10)}"
    elif style == 4:
        suffix = f"sbx({year}){index}:{rng.randrange(1, 12)}"
    else:
        suffix = f"sbx_{index}.v{rng.randrange(1, 4)}"
    return f"{prefix}/{suffix}"


def arxiv_id(rng: random.Random) -> str:
    """A new-style (``2101.00001``, ``1207.1234``) or old-style (``hep-th/9901001``) id."""
    roll = rng.random()
    if roll < 0.7:
        yymm = f"{rng.randrange(15, 25):02d}{rng.randrange(1, 13):02d}"
        return f"{yymm}.{rng.randrange(1, 30000):05d}"
    if roll < 0.8:
        yymm = f"{rng.randrange(8, 15):02d}{rng.randrange(1, 13):02d}"
        return f"{yymm}.{rng.randrange(1, 9999):04d}"
    archive = rng.choice(_OLD_ARCHIVES)
    year = rng.choice([*range(92, 100), *range(0, 7)])
    return f"{archive}/{year:02d}{rng.randrange(1, 13):02d}{rng.randrange(1, 999):03d}"


def norm_doi(text: str) -> str:
    """Lower-case a DOI and strip ``doi:`` / resolver-URL prefixes and URL escapes."""
    return _DOI_URL.sub("", unquote(text.strip())).strip().lower()


def looks_like_doi(text: str) -> bool:
    """Whether `text` is shaped like a DOI (``10.NNNN/suffix``)."""
    return re.match(r"^10\.\d{4,9}/\S+$", text) is not None


def norm_arxiv(text: str) -> str | None:
    """The versionless arXiv id in `text`, or None when it is not shaped like one."""
    raw = _ARXIV_PREFIX.sub("", unquote(text.strip()))
    raw = raw.removesuffix(".pdf")
    raw = _VERSION.sub("", raw)
    if _ARXIV_NEW.match(raw) or _ARXIV_OLD.match(raw):
        return raw
    return None


def arxiv_version(text: str) -> int | None:
    """The ``vN`` version in an arXiv id, or None."""
    match = re.search(r"v(\d+)(?:\.pdf)?$", text)
    return int(match.group(1)) if match else None


def norm_pmcid(text: str) -> str | None:
    """``PMC123`` from ``PMC123``, ``pmc123``, ``PMCID:PMC123``; None otherwise."""
    raw = text.strip().upper().removeprefix("PMCID:").strip()
    if re.fullmatch(r"PMC\d+", raw):
        return raw
    return None


def norm_pmid(text: str) -> str | None:
    """``123`` from ``PMID:123`` / ``pmid:123`` / ``123``; None otherwise."""
    raw = text.strip()
    if raw.lower().startswith("pmid:"):
        raw = raw[5:].strip()
    return raw if raw.isdigit() else None


def norm_openalex(text: str) -> str | None:
    """``W123`` from ``W123``, ``openalex:W123`` or ``https://openalex.org/W123``; else None."""
    raw = text.strip()
    raw = re.sub(r"^(?:https?://openalex\.org/|openalex:)", "", raw, flags=re.IGNORECASE)
    if re.fullmatch(r"[Ww]\d+", raw):
        return raw.upper()
    return None
