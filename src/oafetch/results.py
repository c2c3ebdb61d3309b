"""The typed result of one work, as the library returns it and the manifest records it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oafetch.tokens import Outcome, Reason


@dataclass(frozen=True)
class DownloadResult:
    """How one work ended.

    Attributes:
        work_id: the normalised identifier (``doi:10.…``), or the raw input when unparseable.
        outcome / reason: tokens (see docs/TELEMETRY.md); ``message`` says it in words.
        path: the stored file (absolute), when ``outcome`` is ``success``.
        sha256 / bytes / content_type: of the stored body.
        resolver / url: the source and URL that delivered it (URL redacted of credentials).
        dedupe_action: ``stored``, ``linked``, ``referenced`` or ``kept``.
        ttfp_ms: time from the work's start to its stored file.
        retracted: ``True`` when a source marks the work retracted (PMC's OA service),
            ``False`` when one says it is not, ``None`` when none said.
        tdm_policy: with ``tdm = true``, the ``tdm-policy`` URL of a copy whose rightsholder
            reserved text-and-data-mining rights (how to ask for a licence), if it named one.
        identity: whether the stored PDF's first pages name the work (``match``,
            ``mismatch``, ``unknown``, ``off``); for a work that stored nothing, the verdict of
            the last file quarantined for it. ``identity_score`` is the title score (0-100),
            ``identity_evidence`` a short account. ``quarantined``: the files moved to
            ``quarantine/`` for this work (paths relative to the output directory).
        object_url: with ``files_to``, the URL the stored file was published as
            (``path`` is then None unless the file is still in the output directory).
        line: the input line number, for batch inputs.
    """

    work_id: str
    outcome: Outcome
    reason: Reason
    message: str = ""
    path: Path | None = None
    sha256: str | None = None
    bytes: int | None = None
    content_type: str | None = None
    resolver: str | None = None
    url: str | None = None
    dedupe_action: str | None = None
    ttfp_ms: float | None = None
    trace_id: str | None = None
    version: str | None = None
    license: str | None = None
    host_type: str | None = None
    retracted: bool | None = None
    tdm_policy: str | None = None
    identity: str | None = None
    identity_score: float | None = None
    identity_evidence: str | None = None
    quarantined: tuple[str, ...] = ()
    object_url: str | None = None
    line: int | None = None
    input: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        data["outcome"] = str(self.outcome)
        data["reason"] = str(self.reason)
        data["quarantined"] = list(self.quarantined) or None
        return data
