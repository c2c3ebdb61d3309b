"""What the run knows of each source per key: an in-memory accumulator and its snapshots.

The accumulator is fed by the run's own attempts as they end (:meth:`Accumulator.observe`) and,
once at start, by the attempts a telemetry store holds (:func:`load_history`: the output
directory's own store and ``--learn-from``). Reading the store never happens on the download
path; the fallback reads a snapshot that is rebuilt every few works.

Counts decay: every new work of a key multiplies that key's counts by ``decay``, so what
happened recently weighs more and a source that changed (failing, or working again) is
believed after a bounded number of works.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from oafetch.learning.keys import keys_of_attempt
from oafetch.learning.policy import KeyEstimate, SourceEstimate

if TYPE_CHECKING:  # sqlite3 is imported only when a store is read (importing oafetch stays lean)
    import sqlite3

DECAY = 0.97
BILLED_WEIGHT = 10.0  # a billed call costs as much as this many free requests
HISTORY_ROWS = 200_000  # at most this many of a store's most recent attempts are read

# How an attempt's outcome counts: True a verified file, False a failure, None not evidence
# (skipped by a gate, cancelled because another source won first).
_SUCCESS = {"success"}
_FAILURE = {"no_pdf", "nonretryable", "retryable", "timeout", "error"}


def verdict(outcome: str | None, reason: str | None) -> bool | None:
    """Whether an attempt tells of success (True), failure (False) or nothing (None)."""
    if outcome in _SUCCESS:
        return True
    if outcome == "skipped" and reason == "duplicate":
        return True  # a verified copy, that another source's copy beat by a hair
    if outcome in _FAILURE:
        return False
    return None


def attempt_cost(requests: int | None, seconds: float, billed: bool, ok: bool) -> float:
    """The cost of one attempt: requests + seconds (+ the billed weight)."""
    reqs = requests if requests is not None else (2 if ok else 1)
    return reqs + max(0.0, seconds) + (BILLED_WEIGHT if billed else 0.0)


@dataclass
class _Cell:
    successes: float = 0.0
    failures: float = 0.0
    silent: float = 0.0  # failures with no candidate at all
    cost_sum: float = 0.0
    cost_n: float = 0.0
    tick: int = 0  # the key's work count when last decayed
    asked: int = 0  # raw, for the report
    ok: int = 0
    requests: int = 0
    seconds: deque[float] = field(default_factory=lambda: deque(maxlen=512))

    def catch_up(self, now: int, decay: float) -> None:
        if now > self.tick:
            f = decay ** (now - self.tick)
            self.successes *= f
            self.failures *= f
            self.silent *= f
            self.cost_sum *= f
            self.cost_n *= f
            self.tick = now


@dataclass(frozen=True)
class SourceRow:
    """One line of ``oafetch telemetry sources``."""

    key: str
    source: str
    asked: int
    ok: int
    median_s: float | None
    requests: int

    @property
    def success_rate(self) -> float:
        return self.ok / self.asked if self.asked else 0.0

    @property
    def requests_per_success(self) -> float | None:
        return self.requests / self.ok if self.ok else None


class Accumulator:
    """Attempts per key x source, thread-safe (a lock around small dict updates)."""

    def __init__(self, decay: float = DECAY) -> None:
        self.decay = decay
        self._lock = threading.Lock()
        self._works: dict[str, int] = {}
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._sources: dict[str, set[str]] = {}  # key -> sources with a cell
        self._dirty: set[str] = set()  # keys changed since the last snapshot
        self._snapshot: dict[str, KeyEstimate] = {}

    def begin_work(self, key: str) -> int:
        """Count a new work of ``key``; its 1-based number."""
        with self._lock:
            n = self._works.get(key, 0) + 1
            self._works[key] = n
            self._dirty.add(key)
            return n

    def observe(
        self,
        key: str,
        source: str,
        outcome: str | None,
        reason: str | None,
        *,
        seconds: float,
        requests: int | None,
        billed: bool = False,
    ) -> None:
        """One attempt ended; ignored when it tells nothing (skipped, cancelled)."""
        told = verdict(outcome, reason)
        if told is None:
            return
        cost = attempt_cost(requests, seconds, billed, told)
        with self._lock:
            cell = self._cells.get((key, source))
            if cell is None:
                cell = self._cells[(key, source)] = _Cell()
                self._sources.setdefault(key, set()).add(source)
            self._dirty.add(key)
            cell.catch_up(self._works.get(key, 0), self.decay)
            if told:
                cell.successes += 1.0
                cell.ok += 1
            else:
                cell.failures += 1.0
                if reason == "no-candidate":
                    cell.silent += 1.0
            cell.cost_sum += cost
            cell.cost_n += 1.0
            cell.asked += 1
            cell.requests += requests if requests is not None else (2 if told else 1)
            cell.seconds.append(seconds)

    def snapshot(self) -> dict[str, KeyEstimate]:
        """Immutable estimates per key (what the policy reads until the next snapshot). Only
        the keys changed since the last snapshot are rebuilt: the cost follows the works done,
        not the size of the history."""
        with self._lock:
            fresh = dict(self._snapshot)
            for key in self._dirty:
                now = self._works.get(key, 0)
                sources: dict[str, SourceEstimate] = {}
                for source in self._sources.get(key, ()):
                    cell = self._cells[(key, source)]
                    cell.catch_up(now, self.decay)
                    sources[source] = SourceEstimate(
                        attempts=cell.successes + cell.failures,
                        successes=cell.successes,
                        cost=cell.cost_sum / cell.cost_n if cell.cost_n > 1e-9 else None,
                        silent=cell.silent,
                    )
                fresh[key] = KeyEstimate(now, sources)
            self._dirty.clear()
            self._snapshot = fresh
            return fresh

    def rows(self) -> list[SourceRow]:
        """Raw figures per key x source (for the report), sorted by key then source."""
        with self._lock:
            return [
                SourceRow(
                    key,
                    source,
                    cell.asked,
                    cell.ok,
                    statistics.median(cell.seconds) if cell.seconds else None,
                    cell.requests,
                )
                for (key, source), cell in sorted(self._cells.items())
            ]


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute('PRAGMA table_info("fallback_attempts")')}


#: (run_id, work_id, source, outcome, reason, seconds, requests, oa_status) of one attempt
HistoryRow = tuple[str, str, str, str | None, str | None, float, int | None, str | None]


def history_rows(conn: sqlite3.Connection, limit: int = HISTORY_ROWS) -> Iterable[HistoryRow]:
    """A store's most recent attempts (:data:`HistoryRow`), oldest first."""
    cols = _columns(conn)
    if not cols:
        return []
    requests = "requests" if "requests" in cols else "NULL"
    oa_status = "oa_status" if "oa_status" in cols else "NULL"
    sql = (
        f"SELECT run_id, work_id, source, outcome, reason, elapsed_ms, {requests}, {oa_status} "
        "FROM (SELECT rowid AS r, * FROM fallback_attempts WHERE source IS NOT NULL "
        "AND work_id IS NOT NULL ORDER BY rowid DESC LIMIT ?) ORDER BY r"
    )
    return [
        (run, work, src, out, why, (ms or 0.0) / 1000.0, req, oa)
        for run, work, src, out, why, ms, req, oa in conn.execute(sql, (limit,))
    ]


def feed(acc: Accumulator, rows: Iterable[HistoryRow], billed: frozenset[str] = frozenset()) -> int:
    """Feed stored attempts to ``acc`` (one new work per run x work id, under each key it
    counts for: its own and, once its OA status was known, the OA keys); the works fed."""
    seen: set[tuple[str, str, str]] = set()
    works: set[tuple[str, str]] = set()
    for run, work_id, source, outcome, reason, seconds, requests, oa_status in rows:
        keys = keys_of_attempt(work_id, oa_status)
        for key in keys:
            if (run, work_id, key) not in seen:
                seen.add((run, work_id, key))
                acc.begin_work(key)
            acc.observe(
                key,
                source,
                outcome,
                reason,
                seconds=seconds,
                requests=requests,
                billed=source in billed,
            )
        if keys:
            works.add((run, work_id))
    return len(works)


def load_history(acc: Accumulator, path: Path, billed: frozenset[str] = frozenset()) -> int:
    """Feed a store's attempts to ``acc`` (read-only; a missing or foreign file feeds nothing).

    Returns:
        The number of works fed.
    """
    import sqlite3

    from oafetch.telemetry.store import STORE_FILE

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / STORE_FILE
    if not path.is_file():
        return 0
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return 0
    try:
        rows = history_rows(conn)
    except sqlite3.Error:
        return 0
    finally:
        conn.close()
    return feed(acc, rows, billed)
