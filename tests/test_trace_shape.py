"""The trace shape at batch scale: one small trace per work, linked to the run's span.

A 200-work sandbox batch is 200 work traces plus the run's, each at most 100 spans, so one work
opens in Jaeger in one click whatever the size of the run. Every schema row carries the trace id
of its work, and a failed work's span ends with status ERROR.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from oafetch import Downloader, Outcome
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox
from oafetch.telemetry import names

N_WORKS = 200
MAX_SPANS_PER_TRACE = 100


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    out = tmp_path_factory.mktemp("trace-shape") / "out"
    rates = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "20/s"}
    with Sandbox(corpus=Corpus(seed=11, n_works=N_WORKS), rates=rates) as sandbox:
        config = demo_config(
            sandbox, out, workers=8, cache={"enabled": False}, telemetry={"enabled": True}
        )
        with Downloader(config, resume=False) as dl:
            results = list(dl.run([w.identifier for w in sandbox.works]))
    return out, results


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]


def test_each_work_is_its_own_small_trace_linked_to_the_run(batch: tuple[Path, list[Any]]) -> None:
    out, results = batch
    assert len(results) == N_WORKS
    records = _records(out)
    (run,) = [r for r in records if r["name"] == names.SPAN_RUN]
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_trace[record["trace_id"]].append(record)
    work_traces = {
        t for t, spans in by_trace.items() if any(s["name"] == names.SPAN_WORK for s in spans)
    }
    assert len(work_traces) == N_WORKS
    assert run["trace_id"] not in work_traces
    others = set(by_trace) - work_traces - {run["trace_id"]}
    # only the short carrier of an event that happened outside any span (DESIGN: its own span)
    assert not Counter(
        s["name"] for t in others for s in by_trace[t] if s["name"] != names.SPAN_EVENTS
    )
    assert max(len(by_trace[t]) for t in by_trace) <= MAX_SPANS_PER_TRACE
    run_link = (run["trace_id"], run["span_id"])
    for trace in work_traces:
        roots = [s for s in by_trace[trace] if s["parent_span_id"] is None]
        assert [s["name"] for s in roots] == [names.SPAN_WORK]
        assert [(lk["trace_id"], lk["span_id"]) for lk in roots[0]["links"]] == [run_link]
    # the run's trace holds the run span and nothing of any work
    assert not [s for s in by_trace[run["trace_id"]] if names.WORK_ID in s["attributes"]]


def test_every_row_carries_its_work_s_trace_and_failures_end_in_error(
    batch: tuple[Path, list[Any]],
) -> None:
    out, results = batch
    records = _records(out)
    work_trace: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record["name"] == names.SPAN_WORK:
            work_trace[record["attributes"][names.WORK_ID]].add(record["trace_id"])
    assert all(len(ids) == 1 for ids in work_trace.values())  # parked or not: one trace
    trace_of = {work: next(iter(ids)) for work, ids in work_trace.items()}
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        downloads = conn.execute("SELECT work_id, trace_id FROM downloads").fetchall()
        attempts = conn.execute("SELECT work_id, trace_id FROM fallback_attempts").fetchall()
        http = {r[0] for r in conn.execute("SELECT trace_id FROM http_events")}
        rates = {r[0] for r in conn.execute("SELECT trace_id FROM rate_events")}
    assert len(downloads) == N_WORKS
    for work_id, trace_id in [*downloads, *attempts]:
        assert trace_id == trace_of[work_id], work_id
    (run,) = [r for r in records if r["name"] == names.SPAN_RUN]
    assert http and http <= {*trace_of.values(), run["trace_id"]}
    assert rates <= {*trace_of.values(), run["trace_id"]}
    status = {
        r["attributes"][names.WORK_ID]: r["status"]["code"]
        for r in records
        if r["name"] == names.SPAN_WORK and names.OUTCOME in r["attributes"]
    }
    failed = [r.work_id for r in results if r.outcome is Outcome.ERROR]
    assert failed, "the sandbox corpus has works that fail"
    assert all(status[w] == "ERROR" for w in failed)
    assert all(status[r.work_id] != "ERROR" for r in results if r.outcome is not Outcome.ERROR)
