"""OTLP export to a real (in-process) OTLP/HTTP receiver, credential redaction on CLIENT spans,
and a dead or hung collector that must neither slow the work nor delay exit."""

from __future__ import annotations

import http.server
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.util.types import AttributeValue

import oafetch
from oafetch.config import TelemetryConfig
from oafetch.telemetry import TelemetrySession, names
from oafetch.telemetry.context import identity
from otlp_receiver import Received, http_receiver

SECRET_URL_QUERY = "api_key=SECRET&email=me@x.org"


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with http_receiver() as pair:
        yield pair


# -- a web server that serves bodies and remembers the URLs it was asked for -----------------------


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    body = b"%PDF-1.7\n" + b"x" * 4000 + b"\n%%EOF\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


class FactsStage(httpx.BaseTransport):
    """What the outer stages of the hot path do: fill request.extensions["oafetch"]."""

    def __init__(self, inner: httpx.BaseTransport, *, redact: bool = True) -> None:
        self.inner = inner
        self.redact = redact

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        facts = request.extensions.setdefault("oafetch", {})
        facts.update(
            role="artifact",
            host=request.url.host,
            url_hash="0123456789abcdef",
            rate_delay_ms=1.5,
            breaker_state="closed",
            retry_count=1,
            retry_after_s=2.0,
        )
        if self.redact:
            facts["url_redacted"] = (
                str(request.url).replace("SECRET", "REDACTED").replace("me@x.org", "REDACTED")
            )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def fetch_like_the_hot_path(session: TelemetrySession, url: str, *, redact: bool = True) -> int:
    """run → work → attempt → CLIENT span (instrumented transport) + oafetch.body."""
    tracer = session.telemetry.tracer
    transport = FactsStage(session.instrument(httpx.HTTPTransport()), redact=redact)
    size = 0
    with httpx.Client(transport=transport) as client, identity(run_id="otlp-run"):
        run_attrs = {names.RUN_ID: "otlp-run", names.CONFIG_HASH: "h", names.VERSION: "v"}
        with (
            tracer.start_as_current_span(names.SPAN_RUN, attributes=run_attrs),
            identity(work_id="w1"),
            tracer.start_as_current_span(names.SPAN_WORK) as work,
        ):
            attempt_attrs: dict[str, AttributeValue] = {names.SOURCE: "direct", names.TIER: 1}
            with tracer.start_as_current_span(names.SPAN_ATTEMPT, attributes=attempt_attrs) as att:
                facts: dict[str, Any] = {}
                with (
                    client.stream("GET", url, extensions={"oafetch": facts}) as resp,
                    tracer.start_as_current_span(names.SPAN_BODY) as body,
                ):
                    for chunk in resp.iter_bytes():
                        size += len(chunk)
                    body.set_attributes(
                        {names.BODY_BYTES: size, names.BODY_HTTP_SPAN_ID: facts["client_span_id"]}
                    )
                att.set_attributes({names.OUTCOME: "success", names.REASON: "ok"})
            work.set_attributes({names.OUTCOME: "success", names.REASON: "ok"})
    return size


def test_receiver_gets_the_span_tree_and_no_credential(
    tmp_path: Path, receiver: tuple[str, Received], web: tuple[str, list[str]]
) -> None:
    endpoint, rec = receiver
    base, seen = web
    session = TelemetrySession.start(
        TelemetryConfig(otlp_endpoint=endpoint, otlp_timeout_s=2.0), tmp_path
    )
    size = fetch_like_the_hot_path(session, f"{base}/paper.pdf?{SECRET_URL_QUERY}")
    assert session.shutdown(timeout_s=10)

    assert seen == [f"/paper.pdf?{SECRET_URL_QUERY}"], "the server did get the real URL"
    names_seen = {s["name"] for s in rec.spans}
    assert {
        names.SPAN_RUN,
        names.SPAN_WORK,
        names.SPAN_ATTEMPT,
        names.SPAN_BODY,
        "GET",
    } <= names_seen
    (client,) = [s for s in rec.spans if s["name"] == "GET"]
    attrs = client["attributes"]
    assert attrs[names.URL_FULL] == f"{base}/paper.pdf?api_key=REDACTED&email=REDACTED"
    assert attrs[names.HTTP_REQUEST_METHOD] == "GET"
    assert attrs[names.HTTP_RESPONSE_STATUS_CODE] == 200
    assert attrs[names.RUN_ID] == "otlp-run" and attrs[names.WORK_ID] == "w1"
    assert attrs[names.ROLE] == "artifact"
    assert attrs[names.URL_HASH] == "0123456789abcdef"
    assert attrs[names.RATE_DELAY_MS] == 1.5
    assert attrs[names.BREAKER_STATE] == "closed"
    assert attrs[names.BREAKER_RECORDED] == "success"
    assert attrs[names.RETRY_COUNT] == 1 and attrs[names.HTTP_RESEND_COUNT] == 1
    assert attrs[names.RETRY_AFTER_S] == 2.0
    assert attrs[names.FROM_CACHE] is False
    (body,) = [s for s in rec.spans if s["name"] == names.SPAN_BODY]
    assert body["attributes"][names.BODY_HTTP_SPAN_ID] == client["span_id"]
    for raw in rec.raw:
        assert b"SECRET" not in raw and b"me@x.org" not in raw

    # The same request in the local store, its body bytes linked to its row.
    conn = sqlite3.connect(tmp_path / "telemetry.sqlite")
    try:
        ((status, role, nbytes, span_id),) = conn.execute(
            "SELECT status, role, bytes, span_id FROM http_events"
        ).fetchall()
    finally:
        conn.close()
    assert (status, role, nbytes, span_id) == (200, "artifact", size, client["span_id"])
    local = (tmp_path / "spans.jsonl").read_text(encoding="utf-8")
    assert "SECRET" not in local and "me@x.org" not in local


def test_query_is_dropped_when_no_stage_redacted_the_url(
    tmp_path: Path, receiver: tuple[str, Received], web: tuple[str, list[str]]
) -> None:
    endpoint, rec = receiver
    base, _ = web
    session = TelemetrySession.start(TelemetryConfig(otlp_endpoint=endpoint), tmp_path)
    fetch_like_the_hot_path(session, f"{base}/p?{SECRET_URL_QUERY}", redact=False)
    assert session.shutdown(timeout_s=10)
    (client,) = [s for s in rec.spans if s["name"] == "GET"]
    assert client["attributes"][names.URL_FULL] == f"{base}/p?REDACTED"
    assert all(b"SECRET" not in raw for raw in rec.raw)


def test_metrics_reach_the_collector_too(
    tmp_path: Path, receiver: tuple[str, Received], web: tuple[str, list[str]]
) -> None:
    endpoint, rec = receiver
    base, _ = web
    session = TelemetrySession.start(TelemetryConfig(otlp_endpoint=endpoint), tmp_path)
    fetch_like_the_hot_path(session, f"{base}/p.pdf")
    session.telemetry.instruments.downloads.add(1, {"outcome": "success"})
    assert session.shutdown(timeout_s=10)
    assert {names.METRIC_HTTP_DURATION, names.METRIC_DOWNLOADS} <= rec.metric_names


# -- a dead or hung collector ----------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from oafetch.config import TelemetryConfig
    from oafetch.telemetry import TelemetrySession, names
    from oafetch.telemetry.context import identity

    endpoint, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    session = TelemetrySession.start(
        TelemetryConfig(otlp_endpoint=endpoint, otlp_timeout_s=2.0), out
    )
    tracer = session.telemetry.tracer
    worst = 0.0
    started = time.perf_counter()
    with identity(run_id="outage"):
        with tracer.start_as_current_span(names.SPAN_RUN, attributes={names.RUN_ID: "outage"}):
            for i in range(n):
                t = time.perf_counter()
                with tracer.start_as_current_span(
                    names.SPAN_ATTEMPT, attributes={names.SOURCE: "s", names.OUTCOME: "success"}
                ):
                    pass
                worst = max(worst, time.perf_counter() - t)
                if i % 500 == 0:
                    time.sleep(0.3)  # let the batch processor start (and hang in) exports
    workload = time.perf_counter() - started
    print("shutdown-begin", flush=True)
    t = time.perf_counter()
    ok = session.shutdown()
    print(json.dumps({"worst_span_s": worst, "workload_s": workload,
                      "shutdown_s": time.perf_counter() - t, "ok": ok}), flush=True)
    """
)


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """Accepts TCP connections (the kernel completes the handshake) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def refused_endpoint() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hung", "refused"])
def test_collector_outage_slows_nothing_and_exit_is_bounded(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    endpoint = request.getfixturevalue(f"{kind}_endpoint")
    n = 3_000
    env = {**os.environ, "PYTHONPATH": str(Path(oafetch.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, endpoint, str(tmp_path), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "shutdown-begin", proc.stderr.read() if proc.stderr else ""
    began = time.monotonic()
    out, err = proc.communicate(timeout=60)
    exit_s = time.monotonic() - began
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # Bounds that hold on a machine 10x slower and still catch the failure: the exporter's own
    # default timeout is 60 s (oafetch sets 2 s), and an export on the ending thread would make
    # some span wait for the collector (≥ 2 s here, on every batch).
    assert result["shutdown_s"] < 30, result
    assert exit_s < 30, f"process exit took {exit_s:.1f}s after shutdown began"
    assert result["worst_span_s"] < 2.0, "ending a span never waits for the collector"
    conn = sqlite3.connect(tmp_path / "telemetry.sqlite")
    try:
        (rows,) = conn.execute("SELECT COUNT(*) FROM fallback_attempts").fetchone()
        (finished,) = conn.execute("SELECT finished_at FROM run_summary").fetchone()
    finally:
        conn.close()
    assert rows == n, "every local row is present"
    assert finished is not None
    with (tmp_path / "spans.jsonl").open(encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == n + 1
