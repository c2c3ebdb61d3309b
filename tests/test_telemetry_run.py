"""A real run with telemetry on: the store is complete and exact, and every row links to a span."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from loopback import Handler, Loopback, pdf_bytes, start
from oafetch import Downloader

TABLES = (
    "http_events",
    "rate_events",
    "breaker_transitions",
    "fallback_attempts",
    "downloads",
    "run_summary",
)


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_run_writes_all_six_tables_exactly(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    for i in range(6):
        server.routes[f"/ok{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(3000, seed=i), "application/pdf"
        )
    server.routes["/html.pdf"] = lambda h: h.reply(
        200, b"<html><body>no</body></html>", "application/pdf"
    )
    down = start("127.0.0.2")  # its own host, so its failures are consecutive for its breaker
    down.routes["/down.pdf"] = lambda h: h.reply(503, b"down", "text/plain")
    flaky = {"n": 0}

    def throttled(h: Handler) -> None:
        flaky["n"] += 1
        if flaky["n"] == 1:
            h.reply(429, b"wait", "text/plain", {"Retry-After": "0"})
        else:
            h.reply(200, pdf_bytes(seed=99), "application/pdf")

    server.routes["/flaky.pdf"] = throttled
    config = make_config(
        telemetry={"enabled": True},
        politeness={"enabled": True},
        rates={"127.0.0.1": "50/s", "127.0.0.2": "50/s"},
        breaker={"fail_max": 2, "reset_timeout_s": 30},
        retry={"attempts": 2},
    )
    urls = [server.url(f"/ok{i}.pdf") for i in range(6)] + [
        server.url("/html.pdf"),
        down.url("/down.pdf"),
        server.url("/flaky.pdf"),
    ]
    try:
        with Downloader(config) as dl:
            results = list(dl.run(urls))
            run_id = dl.run_id
    finally:
        down.server.shutdown()
        down.server.server_close()
    out = tmp_path / "out"
    db = out / "telemetry.sqlite"
    for table in TABLES:
        assert _count(db, table) > 0, f"{table} is empty"

    served = len(server.log) + len(down.log)  # every request the servers really answered
    with sqlite3.connect(db) as conn:
        network = conn.execute(
            "SELECT count(*) FROM http_events WHERE from_cache = 0 AND run_id = ?", (run_id,)
        ).fetchone()[0]
        assert network == served, f"http_events {network} != requests served {served}"
        downloads = conn.execute(
            "SELECT count(*) FROM downloads WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        assert downloads == len(results) == len(urls)
        ok = conn.execute("SELECT count(*) FROM downloads WHERE outcome = 'success'").fetchone()[0]
        assert ok == sum(r.ok for r in results) == 7
        summary = conn.execute(
            "SELECT artifacts_total, artifacts_success, finished_at FROM run_summary"
            " WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        assert summary[0] == len(urls) and summary[1] == 7 and summary[2] is not None
        opened = conn.execute(
            "SELECT count(*) FROM breaker_transitions WHERE new_state = 'open'"
        ).fetchone()[0]
        assert opened == 1
        trace_ids = {
            row[0]
            for table in ("http_events", "rate_events", "fallback_attempts", "downloads")
            for row in conn.execute(f"SELECT trace_id FROM {table}")
        }
    spans = [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]
    span_traces = {s["trace_id"] for s in spans}
    assert trace_ids and trace_ids <= span_traces, "every row's trace_id is a span's trace"
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {m["trace_id"] for m in manifest if m["trace_id"]} <= span_traces
