"""Which candidates a run accepts by licence, and in which order it tries them by version.

Sources state a location's licence in many forms: Unpaywall and OpenAlex slugs (``cc-by``,
``cc-by-nc-nd``, ``public-domain``, ``other-oa``), OpenAlex ``license_id`` URLs
(``https://openalex.org/licenses/cc-by``), Crossref's licence URLs
(``http://creativecommons.org/licenses/by/4.0/``,
``https://creativecommons.org/publicdomain/zero/1.0/``), PMC's ``CC BY``, repositories'
``CC-BY-4.0`` or ``CC BY-NC-SA 3.0``, Semantic Scholar's ``CCBY``/``CCBYNC``.
:func:`normalise_license` maps them all to one slug, so ``licenses = ["cc-by"]`` means the
same whichever source spoke. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

#: ``licenses`` value that accepts every candidate, whatever its licence (the default).
ANY = "any"

_CC_PARTS = ("by", "sa", "nc", "nd")
_PUBLIC_DOMAIN = {"public-domain", "publicdomain", "pd", "pdm", "public-domain-mark"}
_COMPACT_CC = re.compile(r"cc(by)(nc)?(nd|sa)?")
_VERSION_TAIL = re.compile(r"-(?:\d+(?:\.\d+)*|igo)(?:-[a-z]{2})?$")


def normalise_license(value: str | None) -> str | None:
    """One slug for a licence however the source spells it; ``None`` for no licence.

    Creative Commons licences become ``cc-<parts>`` without version or jurisdiction
    (``cc-by``, ``cc-by-nc-sa``), CC0 ``cc0``, public-domain marks ``public-domain``. Anything
    else is lower-cased with runs of spaces/underscores as ``-`` (``other-oa``,
    ``publisher-specific-oa``, an unknown URL's host and path).
    """
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    if "://" in text or text.startswith("creativecommons.org"):
        text = _from_url(text)
    text = re.sub(r"[\s_]+", "-", text.strip(" /")).replace("--", "-")
    if text in ("cc0", "cc-zero") or text.startswith(("cc0-", "cc-zero-")):
        return "cc0"
    if text in _PUBLIC_DOMAIN:
        return "public-domain"
    cc = _creative_commons(text)
    return cc if cc is not None else text


def _from_url(url: str) -> str:
    """The licence a URL names (``creativecommons.org/licenses/by-nc/4.0/`` → ``cc-by-nc``)."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = (parts.hostname or "").removeprefix("www.")
    segments = [s for s in parts.path.split("/") if s]
    if host == "creativecommons.org" and segments:
        if segments[0] == "licenses" and len(segments) > 1:
            return f"cc-{segments[1]}"
        if segments[0] == "publicdomain" and len(segments) > 1:
            return "cc0" if segments[1] == "zero" else "public-domain"
    if host == "openalex.org" and len(segments) == 2 and segments[0] == "licenses":
        return segments[1]
    return f"{host}/{'/'.join(segments)}" if segments else host


def _creative_commons(text: str) -> str | None:
    """``cc-by``, ``cc-by-4.0``, ``cc-by-nc-sa-3.0-igo`` … → ``cc-by[-…]``; ``None`` if not CC."""
    if (compact := _COMPACT_CC.fullmatch(text)) is not None:  # Semantic Scholar: CCBYNCSA
        return "cc-" + "-".join(p for p in compact.groups() if p)
    if not text.startswith("cc-"):
        return None
    text = _VERSION_TAIL.sub("", text)
    parts = text.removeprefix("cc-").split("-")
    if not parts or parts[0] != "by" or any(p not in _CC_PARTS for p in parts):
        return None
    return "cc-" + "-".join(parts)


def allowed_licenses(value: str | Iterable[str]) -> frozenset[str] | None:
    """The ``licenses`` setting as slugs; ``None`` for ``"any"`` (no licence is refused).

    Raises:
        ValueError: an empty list, or an entry with no licence in it.
    """
    if isinstance(value, str):
        if value.strip().lower() == ANY:
            return None
        value = [value]
    slugs = set()
    for entry in value:
        slug = normalise_license(entry)
        if slug is None:
            raise ValueError(f"licence entry {entry!r} names no licence")
        slugs.add(slug)
    if not slugs:
        raise ValueError('must list at least one licence, or be "any"')
    return frozenset(slugs)


def license_refusal(license: str | None, allowed: frozenset[str] | None) -> str | None:
    """Why a candidate under ``license`` is refused (``None``: accepted). With a list of
    licences a candidate whose source states none is refused too: its terms are unknown."""
    if allowed is None:
        return None
    slug = normalise_license(license)
    if slug is None:
        return "no licence stated"
    if slug not in allowed:
        return f"licence {slug} not accepted"
    return None


#: The versions a source may name for a location, best first.
VERSIONS = ("publishedVersion", "acceptedVersion", "submittedVersion")
_VERSION_WORDS = {
    "publishedversion": VERSIONS[0],
    "published": VERSIONS[0],
    "vor": VERSIONS[0],
    "acceptedversion": VERSIONS[1],
    "accepted": VERSIONS[1],
    "am": VERSIONS[1],
    "aam": VERSIONS[1],
    "submittedversion": VERSIONS[2],
    "submitted": VERSIONS[2],
    "preprint": VERSIONS[2],
}


def normalise_version(value: str | None) -> str | None:
    """``publishedVersion``, ``acceptedVersion`` or ``submittedVersion`` for any spelling of
    them (Crossref's ``vor``/``am``, ``Published``, ``preprint``); ``None`` if none of them."""
    if value is None:
        return None
    return _VERSION_WORDS.get(re.sub(r"[\s_-]+", "", value).lower())


def preferred_versions(value: Iterable[str]) -> tuple[str, ...]:
    """The ``prefer`` setting in canonical spelling, best first (empty: no preference).

    Raises:
        ValueError: an entry that names no version, or a version listed twice.
    """
    out: list[str] = []
    for entry in value:
        version = normalise_version(entry)
        if version is None:
            raise ValueError(f"{entry!r} is not a version (one of {', '.join(VERSIONS)})")
        if version in out:
            raise ValueError(f"{version} is listed twice")
        out.append(version)
    return tuple(out)


def version_rank(version: str | None, prefer: Sequence[str]) -> int:
    """Where a version stands in ``prefer`` (0 best); versions not listed, and candidates
    whose source names none, come after every listed one."""
    canonical = normalise_version(version)
    return prefer.index(canonical) if canonical in prefer else len(prefer)


def order_by_version(
    items: Iterable[T], prefer: Sequence[str], version: Callable[[T], str | None]
) -> list[T]:
    """``items`` in the order of ``prefer`` by ``version(item)``; ties keep their order (the
    tiers' order, then each source's own), so the preference only moves better versions up."""
    return sorted(items, key=lambda item: version_rank(version(item), prefer))
