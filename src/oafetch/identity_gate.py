"""The identity gate of the fallback: a stored PDF stands for the work only if it is the work.

A PDF that verified as bytes is read (:func:`oafetch.identity.check`) against what the sources
said of the work. A clear mismatch (or, with ``identity = "require"``, an unknown) is moved to
``quarantine/`` with a JSON account of the evidence, and the work's chain goes on.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from oafetch import identity
from oafetch.config import Config
from oafetch.download import BodyOutcome
from oafetch.errors import FetchError
from oafetch.fallback_state import Resolution, _WorkState
from oafetch.http.client import HttpClient
from oafetch.identity import IdentityVerdict
from oafetch.resolvers.base import Candidate
from oafetch.storage import Storage
from oafetch.tokens import Identity, Kind, Reason
from oafetch.urls import host_of, redact_url


def identify(
    body: BodyOutcome,
    candidate: Candidate,
    state: _WorkState,
    *,
    config: Config,
    storage: Storage,
    http: HttpClient,
) -> BodyOutcome | None:
    """Check that a stored PDF is the work (:mod:`oafetch.identity`); ``None`` when it was
    quarantined instead (the chain then goes on to the next candidate)."""
    stored = body.stored
    mode = config.download.identity
    if stored is None or mode == "off" or body.verdict.kind is not Kind.PDF:
        why = "identity = off" if mode == "off" else "not a PDF"
        return replace(body, identity=IdentityVerdict(Identity.OFF, None, why))
    ids = state.ids
    verdict = identity.check(
        stored.path, identity.Expected(title=ids.title, doi=ids.doi, author=ids.author)
    )
    telemetry = http.telemetry
    if telemetry.enabled:
        telemetry.instruments.identity_checks.add(1, {"identity": str(verdict.identity)})
    refused = verdict.identity is Identity.MISMATCH or (
        mode == "require" and verdict.identity is Identity.UNKNOWN
    )
    if not refused:
        return replace(body, identity=verdict)
    reason = (
        Reason.IDENTITY_MISMATCH
        if verdict.identity is Identity.MISMATCH
        else Reason.IDENTITY_UNKNOWN
    )
    evidence = {
        "work_id": state.work.work_id,
        "reason": str(reason),
        "identity": str(verdict.identity),
        "identity_score": verdict.score,
        "evidence": verdict.evidence,
        "expected": {"title": ids.title, "doi": ids.doi, "author": ids.author},
        "source": candidate.source,
        "url": redact_url(body.url),
        "sha256": body.sha256,
        "bytes": body.size,
        "found": verdict.details,
        "ts": time.time(),
    }
    where = f"{candidate.source}: {host_of(body.url)}"
    try:
        rel = storage.quarantine(
            stored, work_id=state.work.work_id, sha256=body.sha256, evidence=evidence
        )
    except FetchError as exc:
        state.fail(exc.reason, f"{where}: {exc}")
        return None
    state.quarantine(verdict, rel)
    state.fail(reason, f"{where}: {verdict.evidence} (moved to {rel})")
    return None


def identity_fields(resolution: Resolution) -> dict[str, Any]:
    """The identity check's fields of a work's result (see :class:`DownloadResult`)."""
    verdict = resolution.identity
    return {
        "identity": str(verdict.identity) if verdict else None,
        "identity_score": verdict.score if verdict else None,
        "identity_evidence": verdict.evidence if verdict else None,
        "quarantined": tuple(rel for _, rel in resolution.quarantined),
    }
