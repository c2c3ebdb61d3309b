"""TelemetrySession and install(): what gets built, what stays off, what the package costs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import oafetch
import oafetch.telemetry
from oafetch.config import TelemetryConfig
from oafetch.telemetry import TelemetrySession, install, metric_views, names, otel_env, runtime
from oafetch.telemetry.context import identity
from oafetch.telemetry.emit import emit_breaker_transition, emit_rate_event


def test_public_api_is_pinned() -> None:
    assert oafetch.telemetry.__all__ == [
        "Installed",
        "TelemetrySession",
        "install",
        "metric_views",
    ]


def test_importing_the_package_costs_only_the_api() -> None:
    """The hot path's modules import no SDK: a disabled run pays for the API alone."""
    code = (
        "import sys, oafetch.telemetry, oafetch.telemetry.emit, oafetch.telemetry.context, "
        "oafetch.telemetry.names, oafetch.telemetry.runtime, oafetch.telemetry.httpx_hooks\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'prometheus_client', 'sqlite3')))\n"
        "print(bad)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(oafetch.__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def test_disabled_session_is_noop_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with TelemetrySession.start(TelemetryConfig(enabled=False), out) as session:
        assert session.telemetry is runtime.Telemetry.noop()
        assert session.tracer_provider is None and session.meter_provider is None
        with session.telemetry.tracer.start_as_current_span(names.SPAN_RUN) as span:
            assert not span.is_recording()
            emit_rate_event(host="h", role="metadata", action="acquire", delay_ms=1.0)
        assert session.flush() is True
        sentinel = object()
        assert session.instrument(sentinel) is sentinel  # type: ignore[arg-type]
    assert not out.exists() or list(out.iterdir()) == []


def test_session_activates_its_handle_and_deactivates_on_shutdown(tmp_path: Path) -> None:
    session = TelemetrySession.start(TelemetryConfig(), tmp_path)
    assert runtime.active() is session.telemetry
    assert session.telemetry.enabled
    # Not installed as the global provider.
    assert trace.get_tracer_provider() is not session.tracer_provider
    with identity(run_id="r"):
        emit_breaker_transition(host="h", scope="host", old_state="closed", new_state="open")
    assert session.shutdown()
    assert runtime.active() is runtime.Telemetry.noop()
    conn = sqlite3.connect(tmp_path / "telemetry.sqlite")
    try:
        assert conn.execute("SELECT run_id, new_state FROM breaker_transitions").fetchall() == [
            ("r", "open")
        ]
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    assert mode == "wal"
    (line,) = (tmp_path / "spans.jsonl").read_text().splitlines()
    assert json.loads(line)["resource"] == {"service.name": "oafetch"}
    assert session.shutdown() is True  # idempotent


@pytest.mark.parametrize(
    ("sqlite", "jsonl", "files"),
    [
        (True, False, {"telemetry.sqlite"}),
        (False, True, {"spans.jsonl"}),
        (False, False, set()),
    ],
)
def test_local_outputs_follow_the_config(
    tmp_path: Path, sqlite: bool, jsonl: bool, files: set[str]
) -> None:
    config = TelemetryConfig(sqlite=sqlite, jsonl=jsonl)
    with (
        TelemetrySession.start(config, tmp_path) as s,
        s.telemetry.tracer.start_as_current_span(names.SPAN_ATTEMPT),
    ):
        pass
    found = {p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))}
    assert found == files


def test_install_into_an_application_s_providers(tmp_path: Path) -> None:
    """The app keeps its exporter (which sees the stamped identity); oafetch writes its store."""
    app_spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], views=metric_views(), shutdown_on_exit=False)
    installed = install(provider, meters, out_dir=tmp_path)
    try:
        assert runtime.active() is installed.telemetry
        tracer = installed.telemetry.tracer
        with identity(run_id="app-run"), tracer.start_as_current_span(names.SPAN_ATTEMPT) as s:
            s.set_attribute(names.SOURCE, "zenodo")
        with provider.get_tracer("app").start_as_current_span("app.own.work"):
            pass  # the application's span: not oafetch's to store
        installed.telemetry.instruments.download_size.record(2048)
        assert installed.flush()
    finally:
        assert installed.shutdown()
    span, _own = app_spans.get_finished_spans()
    assert (span.attributes or {})[names.RUN_ID] == "app-run"
    stored = [json.loads(x)["name"] for x in (tmp_path / "spans.jsonl").read_text().splitlines()]
    assert stored == [names.SPAN_ATTEMPT]
    conn = sqlite3.connect(tmp_path / "telemetry.sqlite")
    try:
        assert conn.execute("SELECT run_id, source FROM fallback_attempts").fetchall() == [
            ("app-run", "zenodo")
        ]
    finally:
        conn.close()
    # The application's provider still works after oafetch's part shut down.
    with provider.get_tracer("app").start_as_current_span("after"):
        pass
    assert len(app_spans.get_finished_spans()) == 3
    data = reader.get_metrics_data()
    assert data is not None
    (size,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == names.METRIC_DOWNLOAD_SIZE
    ]
    (point,) = size.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert point.explicit_bounds[-1] == 1024**3
    provider.shutdown()
    meters.shutdown()


def test_install_refuses_an_api_only_provider(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"opentelemetry\.sdk\.trace\.TracerProvider"):
        install(trace.NoOpTracerProvider(), out_dir=tmp_path)


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        (None, None, None),
        (None, "http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://mine:4318/", "http://collector:4318", "http://mine:4318/v1/traces"),
        ("http://mine:4318/v1/traces", None, "http://mine:4318/v1/traces"),
    ],
)
def test_otlp_endpoint_resolution(
    monkeypatch: pytest.MonkeyPatch, configured: str | None, env: str | None, expected: str | None
) -> None:
    if env is None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", env)
    settings = otel_env.read(TelemetryConfig(otlp_endpoint=configured))
    assert (settings.traces_otlp.endpoint if settings.traces_otlp else None) == expected
