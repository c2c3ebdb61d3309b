"""The OTEL_* environment means what the specification says: a test per variable.

Sessions export to in-process OTLP receivers (HTTP and gRPC) on 127.0.0.1; the local store is
checked to stay complete whatever the export settings.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from loopback import Loopback, pdf_bytes
from oafetch._version import __version__
from oafetch.config import TelemetryConfig
from oafetch.errors import ConfigError
from oafetch.telemetry import TelemetrySession, names, otel_env
from oafetch.telemetry.context import identity
from otlp_receiver import Received, grpc_receiver, http_receiver

N_TRACES = 40


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OTEL_") or key in ("TRACEPARENT", "TRACESTATE"):
            monkeypatch.delenv(key)


def _session_run(out: Path, config: TelemetryConfig | None = None) -> list[str]:
    """A session with N_TRACES work traces (work → attempt) and a metric; returns trace ids."""
    session = TelemetrySession.start(config or TelemetryConfig(), out)
    tracer = session.telemetry.tracer
    trace_ids = []
    try:
        with identity(run_id="env-run"):
            for i in range(N_TRACES):
                with (
                    identity(work_id=f"w{i}"),
                    tracer.start_as_current_span(names.SPAN_WORK) as work,
                    tracer.start_as_current_span(names.SPAN_ATTEMPT),
                ):
                    trace_ids.append(format(work.get_span_context().trace_id, "032x"))
        session.telemetry.instruments.retries.add(1)
    finally:
        assert session.shutdown(timeout_s=10)
    return trace_ids


def _exported(monkeypatch: pytest.MonkeyPatch, out: Path, **env: str) -> tuple[list[str], Received]:
    """A session run exporting to an OTLP/HTTP receiver with ``env`` set: (trace ids, got)."""
    with http_receiver() as (url, got):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        ids = _session_run(out)
    return ids, got


def _stored_spans(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]


def _wait_for(check: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _trace_ids(got: Received) -> set[str]:
    spans, _ = got.snapshot()
    return {s["trace_id"] for s in spans}


# -- resource ------------------------------------------------------------------------------------


def test_otel_service_name_names_the_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _ids, got = _exported(monkeypatch, tmp_path, OTEL_SERVICE_NAME="corpus-builder")
    spans, _ = got.snapshot()
    assert spans and {s["resource"]["service.name"] for s in spans} == {"corpus-builder"}
    assert {s["resource"]["service.version"] for s in spans} == {__version__}
    assert {r["resource"]["service.name"] for r in _stored_spans(tmp_path)} == {"corpus-builder"}


def test_otel_resource_attributes_are_added_and_may_set_the_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _ids, got = _exported(
        monkeypatch,
        tmp_path,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,service.version=9.9",
    )
    spans, _ = got.snapshot()
    resource = spans[0]["resource"]
    assert resource["deployment.environment"] == "ci"
    assert resource["service.version"] == "9.9"
    assert resource["service.name"] == "oafetch"


# -- exporters -----------------------------------------------------------------------------------


def test_otel_traces_exporter_none_sends_no_span_but_keeps_metrics_and_the_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ids, got = _exported(monkeypatch, tmp_path, OTEL_TRACES_EXPORTER="none")
    spans, metrics = got.snapshot()
    assert spans == []
    assert names.METRIC_RETRIES in metrics
    assert {r["trace_id"] for r in _stored_spans(tmp_path)} == set(ids)


def test_otel_metrics_exporter_none_sends_no_metric(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ids, got = _exported(monkeypatch, tmp_path, OTEL_METRICS_EXPORTER="none")
    assert _trace_ids(got) == set(ids)
    assert not any(path.endswith("metrics") for path, _ in got.posts)


def test_otel_traces_exporter_otlp_without_endpoint_uses_the_default(tmp_path: Path) -> None:
    settings = otel_env.read(TelemetryConfig(), {"OTEL_TRACES_EXPORTER": "otlp"})
    assert settings.traces_otlp is not None
    assert settings.traces_otlp.endpoint == "http://localhost:4318/v1/traces"
    assert settings.metrics_otlp is None  # its own variable is unset and no endpoint is known


def test_otel_metrics_exporter_prometheus_serves_on_its_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
    session = TelemetrySession.start(TelemetryConfig(), tmp_path)
    try:
        session.telemetry.instruments.retries.add(3)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    finally:
        session.shutdown()
    assert "oafetch_retries_total 3.0" in text


# -- protocol and endpoints ------------------------------------------------------------------------


def test_otel_exporter_otlp_protocol_grpc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with grpc_receiver() as (url, got):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        ids = _session_run(tmp_path)
        assert _wait_for(lambda: names.METRIC_RETRIES in got.snapshot()[1])
    assert _trace_ids(got) == set(ids)


def test_otel_exporter_otlp_traces_endpoint_alone_exports_traces_there_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with http_receiver() as (url, got):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url}/custom/traces")
        ids = _session_run(tmp_path)
    assert _trace_ids(got) == set(ids)
    assert {path for path, _ in got.posts} == {"/custom/traces"}  # as given; no metrics


def test_otel_exporter_otlp_metrics_endpoint_and_traces_protocol_per_signal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with http_receiver() as (http_url, http_got), grpc_receiver() as (grpc_url, grpc_got):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", grpc_url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{http_url}/v1/metrics")
        ids = _session_run(tmp_path)
    assert _trace_ids(grpc_got) == set(ids)
    assert names.METRIC_RETRIES in http_got.snapshot()[1]
    assert {path for path, _ in http_got.posts} == {"/v1/metrics"}


def test_otel_exporter_otlp_headers_and_compression_reach_the_collector(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ids, got = _exported(
        monkeypatch,
        tmp_path,
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=corpus",
        OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
    )
    assert _trace_ids(got) == set(ids)
    assert got.posts and all(h.get("x-tenant") == "corpus" for _, h in got.posts)
    assert all(h.get("content-encoding") == "gzip" for _, h in got.posts)


def test_otel_metric_export_interval_pushes_while_the_run_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with http_receiver() as (url, got):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
        session = TelemetrySession.start(TelemetryConfig(), tmp_path)
        try:
            session.telemetry.instruments.retries.add(1)
            # oafetch's own interval is 15 s: a push during the session is the variable's doing
            assert _wait_for(lambda: names.METRIC_RETRIES in got.snapshot()[1], timeout_s=12)
        finally:
            session.shutdown()


# -- sampling ------------------------------------------------------------------------------------


def test_otel_traces_sampler_traceidratio_exports_the_ratio_and_stores_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ids, got = _exported(
        monkeypatch, tmp_path, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.5"
    )
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    expected = {t for t in ids if int(t, 16) & TraceIdRatioBased.TRACE_ID_LIMIT < bound}
    assert _trace_ids(got) == expected
    assert 0 < len(expected) < N_TRACES
    spans, _ = got.snapshot()
    assert len(spans) == 2 * len(expected)  # whole traces: work and attempt
    assert {r["trace_id"] for r in _stored_spans(tmp_path)} == set(ids)  # the store: all


def test_otel_traces_sampler_always_off_exports_nothing_and_stores_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ids, got = _exported(monkeypatch, tmp_path, OTEL_TRACES_SAMPLER="always_off")
    assert _trace_ids(got) == set()
    with sqlite3.connect(tmp_path / "telemetry.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM fallback_attempts").fetchone()[0] == N_TRACES
    assert len(ids) == N_TRACES


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_METRICS_EXPORTER", "none,otlp"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318"),
    ],
)
def test_a_value_oafetch_cannot_honour_is_a_clear_error(variable: str, value: str) -> None:
    env = {variable: value}
    if variable == "OTEL_TRACES_SAMPLER_ARG":
        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
    with pytest.raises(ConfigError, match=variable):
        otel_env.read(TelemetryConfig(), env)


# -- the CLI: OTEL_SDK_DISABLED and TRACEPARENT ------------------------------------------------


def _cli_run(tmp_path: Path, server: Loopback, env: dict[str, str]) -> subprocess.CompletedProcess:
    for i in range(3):
        server.routes[f"/p{i}.pdf"] = lambda h, i=i: h.reply(
            200, pdf_bytes(3000, seed=i), "application/pdf"
        )
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{server.url(f'/p{i}.pdf')}\n" for i in range(3)))
    config = tmp_path / "oafetch.toml"
    config.write_text(
        "[politeness]\nenabled = false\n[cache]\nenabled = false\n"
        "[download]\nfsync = false\nmin_pdf_bytes = 100\n"
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OAFETCH_"))}
    args = [sys.executable, "-m", "oafetch.cli", "run", str(ids), "--out", str(tmp_path / "out")]
    return subprocess.run(
        [*args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**keep, **env},
    )


def test_otel_sdk_disabled_stops_export_not_the_local_store(
    tmp_path: Path, server: Loopback
) -> None:
    with http_receiver() as (url, got):
        done = _cli_run(
            tmp_path,
            server,
            {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": url},
        )
    assert done.returncode == 0, done.stderr
    assert got.posts == []
    said = [line for line in done.stderr.splitlines() if "OTEL_SDK_DISABLED" in line]
    assert len(said) == 1 and "local store" in said[0]
    db = tmp_path / "out" / "telemetry.sqlite"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM downloads").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM http_events").fetchone()[0] >= 3
    slo = subprocess.run(
        [sys.executable, "-m", "oafetch.cli", "telemetry", "slo", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert slo.returncode in (0, 1), slo.stderr  # judged, not "no data" (2)


def test_traceparent_parents_the_run_and_each_work_is_its_own_linked_trace(
    tmp_path: Path, server: Loopback
) -> None:
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    done = _cli_run(tmp_path, server, {"TRACEPARENT": f"00-{parent_trace}-{parent_span}-01"})
    assert done.returncode == 0, done.stderr
    records = _stored_spans(tmp_path / "out")
    (run,) = [r for r in records if r["name"] == names.SPAN_RUN]
    assert run["trace_id"] == parent_trace and run["parent_span_id"] == parent_span
    works = [r for r in records if r["name"] == names.SPAN_WORK]
    assert len(works) == 3
    assert len({w["trace_id"] for w in works}) == 3 and parent_trace not in {
        w["trace_id"] for w in works
    }
    for work in works:
        assert work["parent_span_id"] is None
        assert [(lk["trace_id"], lk["span_id"]) for lk in work["links"]] == [
            (run["trace_id"], run["span_id"])
        ]


def test_install_into_a_disabled_sdk_says_the_store_stays_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from oafetch.telemetry import install

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    installed = install(TracerProvider(shutdown_on_exit=False), out_dir=tmp_path, activate=False)
    installed.shutdown()
    said = [r.getMessage() for r in caplog.records if "OTEL_SDK_DISABLED" in r.getMessage()]
    assert len(said) == 1 and "local store stays empty" in said[0]
