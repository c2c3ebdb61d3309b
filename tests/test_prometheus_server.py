"""A real Prometheus server scrapes ``oafetch telemetry serve`` and answers PromQL about the run.

Needs the ``prometheus`` binary (Debian package ``prometheus``, ``/usr/bin/prometheus``); skipped
with that reason when it is missing. Everything listens on 127.0.0.1 on free ports, the storage
lives in a temp dir, and both servers are stopped by the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics_fixtures import GOOD, build_store
from oafetch.telemetry import serve

PROMETHEUS = shutil.which("prometheus") or (
    "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
)
DEADLINE_S = 30.0

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus binary not found: install the Debian package 'prometheus' "
    "(apt-get install -y prometheus) to run the real-server scrape test",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, serve.MetricsServer]]:
    """A store served by ``MetricsServer`` and a Prometheus scraping it every second."""
    db = build_store(tmp_path / "run")
    server = serve.MetricsServer(db, port=0, poll_s=0.5).start()
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: oafetch-store\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    assert PROMETHEUS is not None
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        server.shutdown()


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=2) as response:
        payload = json.load(response)
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def _wait_for(base: str, promql: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + DEADLINE_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = _query(base, promql)
            if result:
                return result
        except OSError as exc:  # not listening yet
            last_error = exc
        time.sleep(0.25)
    pytest.fail(f"no result for {promql!r} within {DEADLINE_S:g} s (last error: {last_error})")


def test_promql_returns_run_yield(prometheus: tuple[str, serve.MetricsServer]) -> None:
    """PromQL over Prometheus' HTTP API returns the run's yield as the store computes it."""
    base, _ = prometheus
    (sample,) = _wait_for(base, 'oafetch_run_yield_ratio{run_id="good"}')
    assert sample["metric"]["job"] == "oafetch-store"
    assert float(sample["value"][1]) == GOOD["artifacts_success"] / GOOD["artifacts_total"]
    # A labelled series and an aggregation work too.
    (p95,) = _query(base, 'oafetch_run_ttfp_p95_seconds{run_id="good"}')
    assert float(p95["value"][1]) == GOOD["ttfp_p95_ms"] / 1000
    (opens,) = _query(base, 'sum by (run_id) (oafetch_breaker_open_events_total{run_id="bad"})')
    assert float(opens["value"][1]) == 7
