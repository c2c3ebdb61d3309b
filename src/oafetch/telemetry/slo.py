"""Service-level objectives: targets, and the verdict of each SLI for one run.

:class:`SloTargets` holds the default targets (DESIGN §3); :func:`load_targets` reads overrides
from the ``[slo]`` table of a TOML file (``oafetch.toml``). :func:`evaluate` is pure: it turns a
run summary (the ``run_summary`` columns, see :mod:`oafetch.telemetry.summary`) into an
:class:`SloReport`. :func:`evaluate_run` fetches that summary from a store: the stored row for a
finished run, a live computation from the event tables for a running one.

An SLI with nothing to measure (no successes, no metadata requests …) is ``n/a`` and never fails.
"""

from __future__ import annotations

import math
import sqlite3
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from oafetch.telemetry import summary as summary_mod

SECONDS_PER_HOUR = 3600.0


class TargetsError(ValueError):
    """The targets file is unreadable or its ``[slo]`` table is invalid."""


@dataclass(frozen=True)
class SloTargets:
    """The SLO targets; each field is also a key of the ``[slo]`` table in ``oafetch.toml``."""

    yield_pct_min: float = 85.0
    ttfp_p50_ms_max: float = 3_000.0
    ttfp_p95_ms_max: float = 20_000.0
    cache_hit_pct_min: float = 60.0
    rate_delay_p95_ms_max: float = 250.0
    http_429_ratio_max: float = 0.02
    breaker_opens_per_hour_max: float = 12.0
    corruption_max: float = 0.0
    # Files quarantined by the identity check per 1,000 works: links that led to another
    # work's PDF, a supplement or a notice. oafetch stored none of them as the work; a high
    # rate says the sources' links (or a resolver's choice among them) went wrong.
    identity_mismatch_per_1k_max: float = 50.0


_PERCENT_KEYS = frozenset({"yield_pct_min", "cache_hit_pct_min"})
_RATIO_KEYS = frozenset({"http_429_ratio_max"})


def load_targets(path: Path) -> SloTargets:
    """Read targets from the ``[slo]`` table of a TOML file; missing keys keep their defaults.

    Raises:
        TargetsError: the file is missing or not TOML, it has no ``[slo]`` table, a key is
            unknown, or a value is not a number in its range (the message names file, key,
            rule and value).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetsError(f"cannot read SLO targets file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"SLO targets file {path} is not valid TOML: {exc}") from exc
    known = [f.name for f in fields(SloTargets)]
    table = data.get("slo")
    if not isinstance(table, dict):
        raise TargetsError(
            f"{path} has no [slo] table; add one with any of these keys: {', '.join(known)}"
        )
    values: dict[str, float] = {}
    for key, value in table.items():
        if key not in known:
            raise TargetsError(
                f"{path}: unknown key slo.{key}; expected one of: {', '.join(known)}"
            )
        values[key] = _check_target(path, key, value)
    return SloTargets(**values)


def _check_target(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TargetsError(f"{path}: slo.{key} must be a finite number (got {value!r})")
    upper = 100.0 if key in _PERCENT_KEYS else 1.0 if key in _RATIO_KEYS else math.inf
    if not 0 <= value <= upper:
        rule = f"between 0 and {upper:g}" if upper != math.inf else ">= 0"
        raise TargetsError(f"{path}: slo.{key} must be {rule} (got {value!r})")
    return float(value)


@dataclass(frozen=True)
class SliResult:
    """One SLI's measured value against its target.

    ``passed`` is None when the SLI had nothing to measure (``value`` None): reported as n/a.
    """

    key: str
    label: str
    value: float | None
    unit: str
    op: Literal[">=", "<="]
    target: float
    passed: bool | None


@dataclass(frozen=True)
class SloReport:
    """The verdict for one run: every SLI, and the summary it was computed from."""

    run_id: str
    running: bool
    duration_s: float | None
    results: tuple[SliResult, ...]
    summary: Mapping[str, Any]
    corrupt: tuple[summary_mod.CorruptArtifact, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """True when no SLI failed (n/a counts as not failing)."""
        return all(r.passed is not False for r in self.results)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``run_id``, ``running``, ``passed``, ``slis``, ``summary``."""
        return {
            "run_id": self.run_id,
            "running": self.running,
            "passed": self.passed,
            "duration_s": self.duration_s,
            "slis": [asdict(r) for r in self.results],
            "summary": dict(self.summary),
            "corrupt": [asdict(c) for c in self.corrupt],
        }


def _sli(
    key: str, label: str, value: float | None, unit: str, op: Literal[">=", "<="], target: float
) -> SliResult:
    if value is None:
        return SliResult(key, label, None, unit, op, target, None)
    passed = value >= target if op == ">=" else value <= target
    return SliResult(key, label, float(value), unit, op, target, passed)


def breaker_opens_per_hour(opens: int | None, duration_s: float | None) -> float | None:
    """Breaker opens normalised by the run's duration (per hour).

    No opens is 0 whatever the duration; opens in a run of unknown duration are n/a; a duration
    under one second counts as one second (so a burst is never divided by zero).
    """
    if not opens:
        return 0.0
    if duration_s is None:
        return None
    return opens / (max(duration_s, 1.0) / SECONDS_PER_HOUR)


def evaluate(
    summary: Mapping[str, Any], targets: SloTargets, *, duration_s: float | None
) -> tuple[SliResult, ...]:
    """Every SLI of ``summary`` (``run_summary`` columns) against ``targets``, in a fixed order."""
    t = targets
    return (
        _sli("yield_pct", "Yield", summary.get("yield_pct"), "%", ">=", t.yield_pct_min),
        _sli(
            "ttfp_p50_ms",
            "Time to first PDF p50",
            summary.get("ttfp_p50_ms"),
            "ms",
            "<=",
            t.ttfp_p50_ms_max,
        ),
        _sli(
            "ttfp_p95_ms",
            "Time to first PDF p95",
            summary.get("ttfp_p95_ms"),
            "ms",
            "<=",
            t.ttfp_p95_ms_max,
        ),
        _sli(
            "cache_hit_pct",
            "Metadata cache hit",
            summary.get("cache_hit_pct"),
            "%",
            ">=",
            t.cache_hit_pct_min,
        ),
        _sli(
            "rate_delay_p95_ms",
            "Metadata rate delay p95",
            summary.get("rate_delay_p95_ms"),
            "ms",
            "<=",
            t.rate_delay_p95_ms_max,
        ),
        _sli(
            "http_429_ratio",
            "HTTP 429 ratio",
            summary.get("http_429_ratio"),
            "ratio",
            "<=",
            t.http_429_ratio_max,
        ),
        _sli(
            "breaker_opens_per_hour",
            "Breaker opens per hour",
            breaker_opens_per_hour(summary.get("breaker_open_events"), duration_s),
            "/h",
            "<=",
            t.breaker_opens_per_hour_max,
        ),
        _sli(
            "corruption_count",
            "Corrupt artifacts",
            summary.get("corruption_count"),
            "",
            "<=",
            t.corruption_max,
        ),
        _sli(
            "identity_mismatch_per_1k",
            "Identity mismatches per 1,000 works",
            summary.get("identity_mismatch_per_1k"),
            "/1k",
            "<=",
            t.identity_mismatch_per_1k_max,
        ),
    )


def evaluate_run(
    conn: sqlite3.Connection,
    run_id: str,
    targets: SloTargets,
    *,
    out_dir: Path | None,
    verify_files: bool = False,
    live: bool = False,
    now: float | None = None,
) -> SloReport:
    """The SLO verdict for one run of the store behind ``conn``.

    A finished run is judged on its stored ``run_summary`` row; a running run (``finished_at``
    NULL), or any run when ``live`` is set, on a summary computed now from the event tables.
    ``verify_files`` re-checks every success's file under ``out_dir`` (existence, size, sha256)
    and replaces the corruption count with the result.

    Args:
        conn: a connection to the store (read-only is enough).
        run_id: a run the store knows.
        targets: the targets to judge against.
        out_dir: the run's output directory (where ``final_path`` is relative to).
        verify_files: hash every stored file (slow: reads every byte).
        live: compute from the tables even for a finished run.
        now: the clock for a running run's duration (default: ``time.time()``).
    """
    row = _stored_row(conn, run_id)
    running = row is None or row.get("finished_at") is None
    if running or live or row is None or row.get("artifacts_total") is None:
        summary = summary_mod.compute_run_summary(conn, run_id, out_dir=out_dir)
    else:
        summary = row
    corrupt: tuple[summary_mod.CorruptArtifact, ...] = ()
    if verify_files:
        corrupt = tuple(summary_mod.find_corrupt(conn, run_id, out_dir=out_dir, verify_hashes=True))
        summary = {**summary, "corruption_count": len(corrupt)}
    if summary.get("started_at") is None:  # a run that never wrote its row: first event
        summary = {**summary, "started_at": _first_ts(conn, run_id)}
    duration = _duration(summary, running, time.time() if now is None else now)
    return SloReport(
        run_id=run_id,
        running=running,
        duration_s=duration,
        results=evaluate(summary, targets, duration_s=duration),
        summary=summary,
        corrupt=corrupt,
    )


def _stored_row(conn: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM run_summary WHERE run_id = ?", (run_id,))
    row = cur.fetchone()
    if row is None:
        return None
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}


def _first_ts(conn: sqlite3.Connection, run_id: str) -> float | None:
    for table in ("downloads", "http_events"):
        (ts,) = conn.execute(f"SELECT MIN(ts) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()
        if ts is not None:
            return float(ts)
    return None


def _duration(summary: Mapping[str, Any], running: bool, now: float) -> float | None:
    started = summary.get("started_at")
    end = now if running else summary.get("finished_at")
    if started is None or end is None:
        return None
    return max(0.0, float(end) - float(started))
