"""``oafetch telemetry sources``: what a store tells of each source per key, and what the
learned order would do with it (the same estimates and policy a run uses)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from oafetch.fallback_state import DEFAULT_TIERS, Tier
from oafetch.learning import policy
from oafetch.learning.estimates import Accumulator, feed, history_rows
from oafetch.learning.keys import OA, SPLIT
from oafetch.learning.policy import Decision, KeyEstimate


@dataclass(frozen=True)
class ReportRow:
    key: str
    source: str
    asked: int
    ok: int
    success_rate: float
    median_s: float | None
    requests_per_success: float | None
    rank: int | None  # the source's place in the order the policy would give the next work
    action: str  # "lead 1", "tier direct", …


@dataclass(frozen=True)
class KeyReport:
    key: str
    works: int
    policy: str
    reason: str
    rows: tuple[ReportRow, ...]


def _action(source: str, d: Decision) -> str:
    if source in d.lead:
        return f"lead {d.lead.index(source) + 1}"
    tier = next((t.name for t in d.tiers if source in t.sources), None)
    return f"tier {tier}" if tier else "not configured"


def _splits(snapshot: Mapping[str, KeyEstimate], key: str) -> dict[str, KeyEstimate]:
    """The estimates of ``key|oa:status`` per OA status."""
    prefix = key + SPLIT + OA
    return {k.removeprefix(prefix): e for k, e in snapshot.items() if k.startswith(prefix)}


def _informants() -> frozenset[str]:
    from oafetch.resolvers.registry import resolver_classes

    return frozenset(n for n, cls in resolver_classes().items() if cls.reports_oa_status)


def source_report(
    conn: sqlite3.Connection, tiers: Sequence[Tier] = DEFAULT_TIERS, key_filter: str = ""
) -> list[KeyReport]:
    """Per key (most works first): each source asked, and the policy's next decision."""
    acc = Accumulator()
    feed(acc, history_rows(conn))
    snapshot = acc.snapshot()
    by_key: dict[str, list[Any]] = {}
    for row in acc.rows():
        if key_filter in row.key:
            by_key.setdefault(row.key, []).append(row)
    reports = []
    for key, rows in by_key.items():
        est = snapshot.get(key)
        known = {s for t in tiers for s in t.sources}
        extra = tuple(r.source for r in rows if r.source not in known)
        full = (*tiers, Tier("other", extra)) if extra else tuple(tiers)
        sep = key.partition(SPLIT + OA)[1]
        splits = None if sep else _splits(snapshot, key)
        d = policy.decide(key, full, est, splits=splits, informants=_informants())
        out = [
            ReportRow(
                key,
                r.source,
                r.asked,
                r.ok,
                r.success_rate,
                r.median_s,
                r.requests_per_success,
                d.ranks.get(r.source),
                _action(r.source, d),
            )
            for r in rows
        ]
        out.sort(key=lambda r: (r.rank or 10_000, r.source))
        reports.append(KeyReport(key, est.works if est else 0, d.policy, d.reason, tuple(out)))
    reports.sort(key=lambda k: (-k.works, k.key))
    return reports


def to_json(reports: list[KeyReport]) -> list[dict[str, Any]]:
    return [asdict(r) for r in reports]


def print_report(reports: list[KeyReport], console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    if not reports:
        console.print("no source attempts in this store")
        return
    table = Table(title="sources x key (what the learned order would do next)")
    for header, justify in (
        ("key", "left"),
        ("source", "left"),
        ("asked", "right"),
        ("success", "right"),
        ("median time", "right"),
        ("requests/success", "right"),
        ("rank", "right"),
        ("policy", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for rep in reports:
        for i, r in enumerate(rep.rows):
            table.add_row(
                rep.key if i == 0 else "",
                r.source,
                str(r.asked),
                f"{r.success_rate * 100:.0f} %",
                f"{r.median_s * 1000:,.0f} ms" if r.median_s is not None else "n/a",
                f"{r.requests_per_success:.1f}" if r.requests_per_success is not None else "—",
                str(r.rank) if r.rank is not None else "—",
                r.action,
            )
        table.add_section()
    console.print(table)
    for rep in reports:
        console.print(f"{rep.key} ({rep.works} works): {rep.policy}: {rep.reason}")
