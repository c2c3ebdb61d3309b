"""A work's outcome in telemetry: its work span's attributes, its metrics, resumed works.

Every finished work is one ``oafetch.work`` span with the outcome attributes below (hence one
``downloads`` row) and one ``oafetch.downloads`` count, including works an earlier run stored
(reason ``resumed``), so ``run_summary``, ``summary.json`` and the live metrics count alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from opentelemetry.trace import Link

from oafetch.manifest import PriorOutcome
from oafetch.results import DownloadResult
from oafetch.storage import sha256_file
from oafetch.telemetry import names
from oafetch.telemetry.runtime import Telemetry
from oafetch.tokens import Outcome, Reason
from oafetch.works import Work

log = logging.getLogger(__name__)


def outcome_attrs(result: DownloadResult, relpath: str | None) -> dict[str, Any]:
    """The ``oafetch.work`` span's outcome attributes (what its ``downloads`` row holds)."""
    attrs = {
        names.OUTCOME: str(result.outcome),
        names.REASON: str(result.reason),
        names.RESOLVER: result.resolver,
        names.CONTENT_TYPE: result.content_type,
        names.BYTES: result.bytes,
        names.SHA256: result.sha256,
        names.FINAL_PATH: relpath,
        names.DEDUPE_ACTION: result.dedupe_action,
        names.TTFP_MS: result.ttfp_ms,
        names.IDENTITY: result.identity,
        names.IDENTITY_SCORE: result.identity_score,
        names.IDENTITY_EVIDENCE: result.identity_evidence,
        names.QUARANTINED: len(result.quarantined) or None,
        names.FILE_VERSION: result.version,
        names.FILE_LICENSE: result.license,
        names.FILE_HOST_TYPE: result.host_type,
        names.RETRACTED: result.retracted,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def count(telemetry: Telemetry, result: DownloadResult) -> None:
    """The metrics of one work outcome (one per ``downloads`` row)."""
    if not telemetry.enabled:
        return
    telemetry.instruments.downloads.add(
        1,
        {
            "outcome": str(result.outcome),
            "reason": str(result.reason),
            "resolver": result.resolver or "none",
        },
    )
    if result.bytes and result.reason is not Reason.RESUMED:  # stored by an earlier run
        telemetry.instruments.download_size.record(result.bytes)


def resumed(
    prior: PriorOutcome | None, out_dir: Path, work: Work, *, verify: bool = False
) -> DownloadResult | None:
    """The result of a work an earlier run stored and whose file is still there with its size
    (and, with ``verify``, its sha256), else None."""
    if prior is None or prior.outcome != Outcome.SUCCESS or not prior.path:
        return None
    path = out_dir / prior.path
    expected = prior.row.get("bytes")
    if not path.is_file() or (expected is not None and path.stat().st_size != expected):
        return None
    if verify and prior.sha256 and sha256_file(path) != prior.sha256:  # changed since: fetch again
        log.warning("%s: %s no longer matches its sha256; fetching again", work.work_id, path)
        return None
    return _resumed_result(prior, work, "stored by an earlier run", path=path)


def resumed_object(prior: PriorOutcome, work: Work, object_url: str) -> DownloadResult:
    """The result of a work an earlier run published to ``files_to`` as ``object_url``."""
    return _resumed_result(prior, work, "published by an earlier run", object_url=object_url)


def _resumed_result(
    prior: PriorOutcome,
    work: Work,
    message: str,
    *,
    path: Path | None = None,
    object_url: str | None = None,
) -> DownloadResult:
    row = prior.row
    return DownloadResult(
        work_id=work.work_id,
        outcome=Outcome.SUCCESS,
        reason=Reason.RESUMED,
        message=message,
        path=path,
        sha256=prior.sha256,
        bytes=row.get("bytes"),
        content_type=row.get("content_type"),
        resolver=row.get("resolver"),
        url=row.get("url"),
        dedupe_action="kept",
        object_url=object_url,
    )


def record_resumed(
    telemetry: Telemetry,
    result: DownloadResult,
    work: Work,
    relpath: str | None,
    links: list[Link],
) -> None:
    """A work stored by an earlier run is still an outcome of this one: its work span (hence
    its ``downloads`` row, ``reason = resumed``, ``dedupe_action = kept``) and its count make
    ``run_summary`` and the live metrics count what ``summary.json`` counts."""
    attrs = {
        names.WORK_ID: work.work_id,
        names.ARTIFACT_ID: work.artifact_id,
        **outcome_attrs(result, relpath),
    }
    with telemetry.tracer.start_as_current_span(names.SPAN_WORK, attributes=attrs, links=links):
        pass
    count(telemetry, result)
