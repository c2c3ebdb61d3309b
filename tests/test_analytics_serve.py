"""``oafetch telemetry serve``: Prometheus exposition of the store's figures."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import promtool
from analytics_fixtures import GOOD, LIVE, build_store, insert
from oafetch.telemetry import serve
from oafetch.telemetry.analytics_cli import main

Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("serve"))


def _parse(text: str) -> dict[Sample, float]:
    samples: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return str(response.read().decode())


def _key(name: str, **labels: str) -> Sample:
    return (name, tuple(sorted(labels.items())))


def test_exposition_values(crafted: Path) -> None:
    """Every series parses as Prometheus text and carries the hand-computed figures."""
    with serve.MetricsServer(crafted, port=0, poll_s=60) as server:
        assert server.url.startswith("http://127.0.0.1:")
        samples = _parse(_scrape(server.url))
    # Base units: ratios in [0, 1], seconds, bytes.
    good_yield = GOOD["artifacts_success"] / GOOD["artifacts_total"]
    assert samples[_key("oafetch_run_yield_ratio", run_id="good")] == good_yield
    assert samples[_key("oafetch_run_ttfp_p50_seconds", run_id="good")] == 0.9
    assert samples[_key("oafetch_run_ttfp_p95_seconds", run_id="good")] == 1.8
    assert samples[_key("oafetch_run_cache_hit_ratio", run_id="good")] == 0.7
    delay = "oafetch_run_rate_delay_p95_seconds"
    assert samples[_key(delay, run_id="good", role="metadata")] == 0.2
    assert samples[_key(delay, run_id="good", role="artifact")] == 1.0
    assert samples[_key("oafetch_host_http429_ratio", run_id="good", host="pub.example")] == (
        pytest.approx(1 / 56)
    )
    assert (
        samples[_key("oafetch_breaker_open_events_total", run_id="good", host="pub.example")] == 3
    )
    assert samples[_key("oafetch_run_dedupe_saved_bytes", run_id="good")] == 2_000_000
    assert samples[_key("oafetch_run_corrupt_artifacts", run_id="bad")] == 3
    assert samples[_key("oafetch_run_running", run_id="good")] == 0
    assert samples[_key("oafetch_store_up")] == 1


@promtool.needs_promtool
def test_exposition_passes_promtool(crafted: Path) -> None:
    """``promtool check metrics`` on a scrape of finished, running and sparse runs: exit 0 and
    nothing to say (base units, no quantile label on a gauge, no reserved suffix)."""
    with serve.MetricsServer(crafted, port=0, poll_s=60) as server:
        text = _scrape(server.url)
    assert set(serve.METRIC_NAMES) == {name for name, _ in _parse(text)}
    assert promtool.check_metrics(text) == (0, "")


def test_running_run_is_live(crafted: Path) -> None:
    """A running run is computed from its rows: per-host 429 ratio and breaker opens."""
    with serve.MetricsServer(crafted, port=0, poll_s=60) as server:
        samples = _parse(_scrape(server.url))
    assert samples[_key("oafetch_run_running", run_id="live")] == 1
    assert samples[_key("oafetch_run_yield_ratio", run_id="live")] == 2 / 3
    for host, ratio in LIVE["http429_by_host"].items():
        assert samples[_key("oafetch_host_http429_ratio", run_id="live", host=host)] == ratio
    assert samples[_key("oafetch_breaker_open_events_total", run_id="live", host="a.example")] == 2


def test_no_data_means_no_sample(crafted: Path) -> None:
    """A figure with nothing to measure is left out, not exported as 0."""
    with serve.MetricsServer(crafted, port=0, poll_s=60) as server:
        samples = _parse(_scrape(server.url))
    assert _key("oafetch_run_yield_ratio", run_id="sparse") in samples
    assert _key("oafetch_run_cache_hit_ratio", run_id="sparse") not in samples
    assert _key("oafetch_run_ttfp_p50_seconds", run_id="sparse") not in samples


def test_metric_names_match_exposition(crafted: Path) -> None:
    """METRIC_NAMES (used by the deploy checks) is exactly what the endpoint exposes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(serve.StoreCollector(crafted))
    names = {name for name, _ in _parse(generate_latest(registry).decode())}
    assert names == set(serve.METRIC_NAMES)


def test_refresh_at_most_once_per_poll(tmp_path: Path) -> None:
    """Between polls a scrape serves cached figures; after the interval it sees new rows."""
    db = build_store(tmp_path)
    now = [0.0]
    collector = serve.StoreCollector(db, poll_s=10.0, clock=lambda: now[0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    def yield_of_live() -> float:
        return _parse(generate_latest(registry).decode())[
            _key("oafetch_run_yield_ratio", run_id="live")
        ]

    before = yield_of_live()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        insert(conn, "downloads", run_id="live", ts=9.0, work_id="W9", outcome="error")
        conn.commit()
    now[0] = 5.0
    assert yield_of_live() == before  # cached
    now[0] = 10.0
    assert yield_of_live() == 0.5  # 2 of 4


def test_store_down_keeps_last_figures(tmp_path: Path) -> None:
    """If the store becomes unreadable, oafetch_store_up drops to 0 and the last figures stay."""
    db = build_store(tmp_path)
    now = [0.0]
    collector = serve.StoreCollector(db, poll_s=1.0, clock=lambda: now[0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    assert _parse(generate_latest(registry).decode())[_key("oafetch_store_up")] == 1
    shutil.rmtree(tmp_path)
    now[0] = 2.0
    samples = _parse(generate_latest(registry).decode())
    assert samples[_key("oafetch_store_up")] == 0
    assert samples[_key("oafetch_run_yield_ratio", run_id="good")] == 0.9


def test_own_registry_only(crafted: Path) -> None:
    """The endpoint never touches prometheus_client's global registry."""
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    with serve.MetricsServer(crafted, port=0, poll_s=60) as server:
        _scrape(server.url)
    assert set(REGISTRY._names_to_collectors) == before


def test_cli_serve_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing store or a taken port is a usage error (exit 2), not a traceback."""
    assert main(["serve", "--db", str(tmp_path / "none.sqlite"), "--port", "0"]) == 2
    assert "telemetry store not found" in capsys.readouterr().err
    db = build_store(tmp_path)
    with serve.MetricsServer(db, port=0) as taken:
        assert main(["serve", "--db", str(db), "--port", str(taken.port)]) == 2
    assert f"cannot listen on 127.0.0.1:{taken.port}" in capsys.readouterr().err


def test_cli_serve_runs_until_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI serves until Ctrl-C, then releases the port and exits 0."""
    db = build_store(tmp_path)
    started = threading.Event()
    seen: dict[str, str] = {}

    def serve_then_interrupt(self: serve.MetricsServer) -> None:
        seen["body"] = ""
        thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        started.set()
        try:
            seen["body"] = _scrape(self.url)
        finally:
            self._httpd.shutdown()
            thread.join()
        raise KeyboardInterrupt

    monkeypatch.setattr(serve.MetricsServer, "serve_forever", serve_then_interrupt)
    assert main(["serve", "--db", str(db), "--port", "0", "--poll", "1"]) == 0
    assert started.is_set() and "oafetch_run_yield_ratio" in seen["body"]
    assert "Ctrl-C to stop" in capsys.readouterr().err
