"""A demo batch sent to a real OTLP backend, Arize Phoenix, and its trace tree read back.

Phoenix is too large to install within a CI run's budget (docs/TELEMETRY.md, "A real OTLP
backend"), so this runs only when ``TEST_PHOENIX_PYTHON`` names a Python that has
``arize-phoenix`` installed; the in-process receivers cover the same shape in every run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oafetch import Downloader
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox
from oafetch.telemetry import names

PHOENIX_PYTHON = os.environ.get("TEST_PHOENIX_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not PHOENIX_PYTHON, reason="TEST_PHOENIX_PYTHON (a Python with arize-phoenix) is not set"
)
N_WORKS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def phoenix(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
    }
    log = (tmp_path / "phoenix.log").open("w")
    proc = subprocess.Popen(
        [PHOENIX_PYTHON, "-m", "phoenix.server.main", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"Phoenix did not start: {(tmp_path / 'phoenix.log').read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _spans(base: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        body = httpx.get(
            f"{base}/v1/projects/default/spans/otlpv1", params=params, timeout=30
        ).json()
        found.extend(body["data"])
        cursor = body.get("next_cursor")
        if not cursor:
            return found


def _attr(span: dict[str, Any], key: str) -> Any:
    for kv in span.get("attributes") or []:
        if kv["key"] == key:
            return next((v for v in kv["value"].values() if v is not None), None)
    return None


def test_a_demo_batch_reads_back_from_phoenix_as_one_trace_per_work(
    phoenix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{phoenix}/v1/traces")
    with Sandbox(corpus=Corpus(seed=1, n_works=N_WORKS)) as sandbox:
        config = demo_config(
            sandbox, tmp_path / "out", cache={"enabled": False}, telemetry={"enabled": True}
        )
        with Downloader(config, resume=False) as dl:
            results = list(dl.run(w.identifier for w in sandbox.works))
            run_id = dl.run_id
    assert len(results) == N_WORKS

    def complete() -> bool:
        return sum(s["name"] == names.SPAN_WORK for s in _spans(phoenix)) >= N_WORKS

    deadline = time.monotonic() + 60
    while not complete() and time.monotonic() < deadline:
        time.sleep(1)
    spans = _spans(phoenix)
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    (run,) = [s for s in spans if s["name"] == names.SPAN_RUN]
    assert _attr(run, names.RUN_ID) == run_id
    works = [s for s in spans if s["name"] == names.SPAN_WORK and not s.get("parent_span_id")]
    assert len({w["trace_id"] for w in works}) == N_WORKS  # each work its own trace
    assert run["trace_id"] not in {w["trace_id"] for w in works}
    stored_ok = 0
    for work in works:
        assert _attr(work, names.RUN_ID) == run_id  # Phoenix's API returns no links
        tree = by_trace[work["trace_id"]]
        children: dict[str, list[str]] = defaultdict(list)
        for span in tree:
            children[span.get("parent_span_id") or ""].append(span["name"])
        attempts = [s for s in tree if s["name"] == names.SPAN_ATTEMPT]
        assert attempts and all(a["parent_span_id"] for a in attempts)
        outcomes = {_attr(s, names.OUTCOME) for s in tree if s["name"] == names.SPAN_WORK}
        if "success" in outcomes:  # on the resumed span, for a work that was parked
            stored_ok += 1
            under = [n for a in attempts for n in children[a["span_id"]]]
            assert names.SPAN_BODY in under
            assert any(n in ("GET", "HEAD") for n in under)
    assert stored_ok == sum(r.ok for r in results) > 0
