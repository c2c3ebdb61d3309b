"""The key a source's success is learned under: what is known about a work before asking.

A DOI's registrant prefix stands for its publisher (``doi-prefix:10.1371``), a URL for its host
(``host:journals.example.org``), any other identifier for its kind (``kind:pmcid``). Keys are
short, stable and free of secrets (a URL's query never enters one).

Once a source has reported the work's OA status, two finer keys apply as well: the work's key
refined by it (``doi-prefix:10.1371|oa:green``) and the OA status alone (``oa:green``), the
back-off when the work's own key has too little evidence.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from oafetch.works import IdKind, Work

DOI_PREFIX = "doi-prefix:"
HOST = "host:"
KIND = "kind:"
OA = "oa:"
SPLIT = "|"


def _doi_prefix(doi: str) -> str:
    prefix = doi.split("/", 1)[0].strip().lower()
    return prefix if prefix.startswith("10.") else ""


def work_key(work: Work) -> str:
    """The learning key of ``work``."""
    if work.kind is IdKind.DOI and (prefix := _doi_prefix(work.value)):
        return DOI_PREFIX + prefix
    if work.kind is IdKind.URL:
        host = (urlsplit(work.value).hostname or "").lower()
        if host:
            return HOST + host
    return KIND + str(work.kind)


def key_of_work_id(work_id: str | None) -> str | None:
    """The key of a stored ``work_id`` (``doi:10.1371/…``, ``url:https://…``, ``pmcid:PMC1``);
    ``None`` when it is not one oafetch writes."""
    if not work_id or ":" not in work_id:
        return None
    kind, _, value = work_id.partition(":")
    if kind == IdKind.DOI and (prefix := _doi_prefix(value)):
        return DOI_PREFIX + prefix
    if kind == IdKind.URL:
        host = (urlsplit(value.strip()).hostname or "").lower()
        return HOST + host if host else None
    if kind in {k.value for k in IdKind}:
        return KIND + kind
    return None


def oa_keys(key: str, oa_status: str) -> tuple[str, str]:
    """The finer keys of a work of ``key`` whose OA status is known: ``key|oa:status`` and
    ``oa:status``."""
    return f"{key}{SPLIT}{OA}{oa_status}", OA + oa_status


def keys_of_attempt(work_id: str | None, oa_status: str | None) -> tuple[str, ...]:
    """Every key a stored attempt counts under: its work's key and, when the OA status was
    known as it ended, the two OA keys."""
    key = key_of_work_id(work_id)
    if key is None:
        return ()
    return (key, *oa_keys(key, oa_status)) if oa_status else (key,)
