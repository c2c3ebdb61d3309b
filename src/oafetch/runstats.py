"""Counters of one run, for progress lines, the summary table and ``summary.json``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from oafetch.candidate_policy import normalise_license
from oafetch.results import DownloadResult
from oafetch.tokens import Outcome, Reason


@dataclass
class RunStats:
    run_id: str
    started: float = field(default_factory=time.time)
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    resolver_success: Counter[str] = field(default_factory=Counter)
    identity: Counter[str] = field(default_factory=Counter)  # stored works by identity verdict
    quarantined: int = 0  # files the identity check moved to quarantine/
    # stored works by (version, licence slug) as their sources said ("unknown": unsaid)
    versions: Counter[tuple[str, str]] = field(default_factory=Counter)
    retracted: int = 0  # works a source marks retracted (stored or not)
    bytes_stored: int = 0
    resumed: int = 0
    bad_lines: int = 0
    parked: int = 0  # works waiting for a host (set by the scheduler)
    hosts_waiting: int = 0  # distinct hosts those works wait for
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: DownloadResult) -> None:
        with self._lock:
            if result.reason is Reason.RESUMED:
                self.resumed += 1
            self.outcomes[str(result.outcome)] += 1
            self.reasons[str(result.reason)] += 1
            self.quarantined += len(result.quarantined)
            if result.outcome is Outcome.SUCCESS:
                self.resolver_success[result.resolver or "?"] += 1
                if result.identity:
                    self.identity[result.identity] += 1
                license = normalise_license(result.license) or "unknown"
                self.versions[(result.version or "unknown", license)] += 1
                if result.reason is not Reason.RESUMED:
                    self.bytes_stored += result.bytes or 0
            if result.retracted:
                self.retracted += 1
            if result.reason is Reason.BAD_INPUT:
                self.bad_lines += 1

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    @property
    def yield_pct(self) -> float:
        attempted = self.done - self.bad_lines
        return 100.0 * self.outcomes[Outcome.SUCCESS] / attempted if attempted else 0.0

    def as_dict(self, finished: float | None = None) -> dict[str, Any]:
        finished = finished or time.time()
        with self._lock:
            return {
                "run_id": self.run_id,
                "started_at": self.started,
                "finished_at": finished,
                "elapsed_s": round(finished - self.started, 3),
                "works": self.done,
                # as run_summary counts them: one per work outcome, bad input lines aside
                "artifacts_total": self.done - self.bad_lines,
                "artifacts_success": self.outcomes[Outcome.SUCCESS],
                "yield_pct": round(self.yield_pct, 2),
                "outcomes": dict(self.outcomes),
                "reasons": dict(self.reasons),
                "success_by_resolver": dict(self.resolver_success),
                # the stored works' identity verdicts, and the files quarantined (not the work)
                "identity": {**dict(self.identity), "quarantined": self.quarantined},
                # stored works by version, then licence
                "stored_by_version": version_table(self.versions),
                "retracted": self.retracted,
                "bytes_stored": self.bytes_stored,
                "resumed": self.resumed,
                "bad_input_lines": self.bad_lines,
            }


def version_table(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``{version: {licence: works}}``, versions in the order of their totals."""
    table: dict[str, dict[str, int]] = {}
    for (version, license), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.setdefault(version, {})[license] = n
    return table
