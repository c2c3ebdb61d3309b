"""Metric Views and the live Prometheus endpoint: explicit buckets, parseable exposition."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation
from prometheus_client.parser import text_string_to_metric_families

from oafetch.config import TelemetryConfig
from oafetch.telemetry import TelemetrySession, metric_views, names
from oafetch.telemetry.context import identity
from oafetch.telemetry.metrics import DURATION_BUCKETS_S, SIZE_BUCKETS_BY


@pytest.fixture
def web() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_views_use_explicit_buckets_only() -> None:
    views = metric_views()
    assert {v._instrument_name for v in views} == {
        names.METRIC_HTTP_DURATION,
        names.METRIC_DOWNLOAD_SIZE,
        names.METRIC_RATE_DELAY,
        names.METRIC_TRANSPORT_FAILURE_DURATION,
    }
    assert all(isinstance(v._aggregation, ExplicitBucketHistogramAggregation) for v in views)
    assert DURATION_BUCKETS_S[-1] == 120.0
    assert SIZE_BUCKETS_BY[0] == 1024 and SIZE_BUCKETS_BY[-1] == 1024**3


def test_prometheus_exposition_parses_and_carries_the_metrics(tmp_path: Path, web: str) -> None:
    session = TelemetrySession.start(
        TelemetryConfig(metrics_port=0, metrics_linger_s=0, sqlite=False, jsonl=False), tmp_path
    )
    try:
        assert session.prometheus is not None
        inst = session.telemetry.instruments
        with (
            identity(run_id="prom"),
            httpx.Client(transport=session.instrument(httpx.HTTPTransport())) as client,
        ):
            assert client.get(f"{web}/x?api_key=SECRET").status_code == 200
            with pytest.raises(httpx.ConnectError):
                client.get(f"http://127.0.0.1:{closed_port()}/down")
        inst.downloads.add(1, {"outcome": "success", "reason": "ok", "resolver": "unpaywall"})
        inst.download_size.record(300_000)
        inst.rate_delay.record(0.2, {"host": "h", "role": "metadata"})
        inst.retries.add(1, {"reason": "retry-after"})
        inst.breaker_transitions.add(1, {"host": "h", "scope": "host", "new_state": "open"})
        inst.fallback_attempts.add(1, {"source": "unpaywall", "outcome": "success"})

        text = httpx.get(session.prometheus.url, timeout=5).text
    finally:
        session.shutdown()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "http_client_request_duration_seconds": "histogram",
        "oafetch_download_size_bytes": "histogram",
        "oafetch_rate_limit_delay_seconds": "histogram",
        "oafetch_http_failure_duration_seconds": "histogram",
        "oafetch_downloads": "counter",
        "oafetch_retries": "counter",
        "oafetch_breaker_transitions": "counter",
        "oafetch_fallback_attempts": "counter",
    }
    assert {n: families[n].type for n in expected if n in families} == expected
    assert "target_info" not in families

    def buckets(family: str) -> set[str]:
        return {s.labels["le"] for s in families[family].samples if s.name.endswith("_bucket")}

    assert "120.0" in buckets("http_client_request_duration_seconds")
    assert "1073741824.0" in buckets("oafetch_download_size_bytes")
    failure = [s for s in families["oafetch_http_failure_duration_seconds"].samples]
    assert any(s.labels.get("error_type") == "ConnectError" for s in failure)
    for family in families.values():
        for sample in family.samples:
            assert not any(k.startswith("otel_scope") for k in sample.labels), sample
            assert "url_full" not in sample.labels
    assert "SECRET" not in text
