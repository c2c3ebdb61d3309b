"""oafetch inside an application that owns its OpenTelemetry SDK: it takes nothing, loses nothing.

Each case runs in a child process (tests/embedding_app.py), since global providers, a global
httpx instrumentation and the environment are process-wide. Exact counts: oafetch's CLIENT
spans = requests the server answered for oafetch = ``http_events`` network rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loopback import Loopback, pdf_bytes
from oafetch.telemetry.metrics import DURATION_BUCKETS_S

HERE = Path(__file__).parent
N_WORKS = 6


def _serve(server: Loopback) -> None:
    for i in range(N_WORKS):
        server.routes[f"/p{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(3000, seed=i), "application/pdf"
        )
    server.routes["/app"] = lambda h: h.reply(200, b"{}", "application/json")


def _run(case: str, server: Loopback, out: Path) -> dict[str, Any]:
    _serve(server)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("TRACEPARENT", "TRACESTATE")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(HERE / "embedding_app.py"), case, server.base, str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _network_rows(out: Path) -> int:
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        return int(
            conn.execute("SELECT count(*) FROM http_events WHERE from_cache = 0").fetchone()[0]
        )


def _served_for_oafetch(server: Loopback) -> int:
    """Requests the server answered for oafetch (its PDFs and robots.txt; not ``/app``)."""
    return sum(1 for s in server.log if s.path != "/app")


def test_providers_not_set_globally_get_every_client_span_and_row(
    server: Loopback, tmp_path: Path
) -> None:
    found = _run("nonglobal", server, tmp_path / "out")
    served = _served_for_oafetch(server)
    assert found["ok"] == N_WORKS
    assert served == N_WORKS + 1  # + robots.txt
    assert found["oafetch_client_spans"] == found["client_spans"] == served
    assert found["stable_names"]
    assert _network_rows(tmp_path / "out") == served
    duration = found["metrics"]["oafetch:http.client.request.duration"]
    assert duration["count"] == served
    assert all(bounds == list(DURATION_BUCKETS_S) for bounds in duration["bounds"])
    assert not any(a.startswith("url.") for a in duration["attrs"])


def test_an_app_that_instruments_httpx_gets_one_client_span_per_request(
    server: Loopback, tmp_path: Path
) -> None:
    found = _run("app_httpx", server, tmp_path / "out")
    served = _served_for_oafetch(server)
    assert found["ok"] == N_WORKS == served - 1
    assert found["nested_client_spans"] == 0
    assert found["oafetch_client_spans"] == served
    assert found["client_spans"] == served + 1  # + the application's own request
    assert _network_rows(tmp_path / "out") == served  # not twice


def test_the_app_s_spans_on_other_threads_are_neither_stamped_nor_stored(
    server: Loopback, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    found = _run("app_threads", server, out)
    assert found["ok"] == N_WORKS
    assert found["app_spans"] > 0
    assert found["app_spans_stamped"] == 0
    stored = [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]
    assert not [r for r in stored if r["name"].startswith("app.")]
    assert _network_rows(out) == _served_for_oafetch(server) == found["oafetch_client_spans"]


def test_oafetch_changes_no_environment_variable_and_no_global_provider(
    server: Loopback, tmp_path: Path
) -> None:
    found = _run("env", server, tmp_path / "out")
    assert found["ok"] == N_WORKS
    assert found["changed_by_import"] == []
    assert found["changed_by_run"] == []
    assert found["global_tracer_provider"] == "ProxyTracerProvider"
    # The application's own httpx spans keep the names the process chose (the default here),
    # although oafetch's CLIENT spans in the same process use the stable ones.
    assert "http.url" in found["app_client_attrs"] or "http.method" in found["app_client_attrs"]
    assert "url.full" not in found["app_client_attrs"]


def test_fetch_inside_an_app_span_is_that_span_s_child(server: Loopback, tmp_path: Path) -> None:
    found = _run("fetch_in_span", server, tmp_path / "out")
    app_trace, app_span = found["app_span"]
    (work,) = found["work_spans"]
    assert work["trace_id"] == app_trace == found["result_trace_id"]
    assert work["parent"] == app_span
    assert work["links"] == [found["run_span"]]


def test_metric_views_leave_the_app_s_own_instruments_alone() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from oafetch.telemetry import metric_views

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], views=metric_views(), shutdown_on_exit=False)
    histogram = meters.get_meter("app").create_histogram("http.client.request.duration", unit="s")
    histogram.record(0.5, {"url.full": "https://app.example/x", "server.address": "app.example"})
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert list(point.explicit_bounds) != list(DURATION_BUCKETS_S)  # the SDK's defaults
    assert "url.full" in (point.attributes or {})  # not dropped: oafetch's View is not for it
    meters.shutdown()


@pytest.mark.parametrize("case", ["nonglobal"])
def test_the_store_keeps_every_work_trace_id(server: Loopback, tmp_path: Path, case: str) -> None:
    out = tmp_path / "out"
    found = _run(case, server, out)
    traces = {w["trace_id"] for w in found["work_spans"]}
    assert len(traces) == N_WORKS  # each work its own trace
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        rows = {r[0] for r in conn.execute("SELECT trace_id FROM downloads")}
        http = {r[0] for r in conn.execute("SELECT trace_id FROM http_events")}
    assert rows == traces
    assert http <= traces


def test_the_documented_example_runs(tmp_path: Path) -> None:
    """examples/embed_in_app.py, as docs/TELEMETRY.md shows it, runs offline and says so."""
    example = HERE.parent / "examples" / "embed_in_app.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "first work: success" in done.stdout
    assert "5 works:" in done.stdout and " in 5 traces" in done.stdout
    assert (tmp_path / "out" / "telemetry.sqlite").is_file()
