"""The live endpoint at the end of a run: the final counts stay up until one scrape fetched them.

Every bound here is generous (a linger of 10 minutes that a scrape must cut short within one):
the tests check order and outcome, never how fast this machine is. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oafetch import batch
from oafetch.cli import build_parser, load_config
from oafetch.config import Config, TelemetryConfig
from oafetch.errors import ConfigError
from oafetch.telemetry import TelemetrySession
from oafetch.telemetry.metrics import PrometheusEndpoint

LONG_LINGER_S = 600.0  # far longer than any test may take: only a scrape or a stop ends it
GENEROUS_S = 60.0


def _session(tmp_path: Path, linger_s: float) -> TelemetrySession:
    config = TelemetryConfig(metrics_port=0, metrics_linger_s=linger_s, sqlite=False, jsonl=False)
    return TelemetrySession.start(config, tmp_path)


def _endpoint(session: TelemetrySession) -> PrometheusEndpoint:
    assert session.prometheus is not None
    return session.prometheus


def _downloads(url: str) -> dict[str, float]:
    """``oafetch_downloads_total`` by outcome, as a scrape of ``url`` shows it."""
    text = httpx.get(url, timeout=10).text
    return {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "oafetch_downloads_total"
    }


def _count(session: TelemetrySession, outcome: str, n: int = 1) -> None:
    session.telemetry.instruments.downloads.add(
        n, {"outcome": outcome, "reason": "ok" if outcome == "success" else "not-found"}
    )


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GENEROUS_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {GENEROUS_S:g} s")
        time.sleep(0.01)


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


@pytest.fixture
def shutting_down() -> Iterator[Callable[[TelemetrySession], threading.Thread]]:
    """Starts ``session.shutdown()`` on a thread (it lingers); joins it at the end of the test."""
    threads: list[threading.Thread] = []

    def start(session: TelemetrySession) -> threading.Thread:
        thread = threading.Thread(target=session.shutdown, name="test-shutdown", daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    from oafetch.telemetry.metrics import stop_lingering

    stop_lingering()  # a failed test leaves no endpoint lingering
    for thread in threads:
        thread.join(GENEROUS_S)


def test_a_scrape_after_the_run_gets_the_final_counts_and_ends_the_linger(
    tmp_path: Path, shutting_down: Callable[[TelemetrySession], threading.Thread]
) -> None:
    """Counts recorded after the last scrape of the run are served once the run has ended; the
    first scrape of them ends the linger and closes the port."""
    session = _session(tmp_path, LONG_LINGER_S)
    endpoint = _endpoint(session)
    _count(session, "success", 3)
    _count(session, "error")
    assert _downloads(endpoint.url) == {"success": 3, "error": 1}  # during the run
    _count(session, "success", 2)  # after the run's last scrape

    thread = shutting_down(session)
    _wait_until(lambda: endpoint.final, "frozen")
    assert thread.is_alive() and not endpoint.final_scraped  # lingering: nobody scraped yet
    assert _downloads(endpoint.url) == {"success": 5, "error": 1}

    thread.join(GENEROUS_S)  # a tenth of the linger: the scrape ended it
    assert not thread.is_alive()
    assert endpoint.final_scraped
    assert _refused(endpoint.port)


def test_linger_zero_closes_the_port_at_once(tmp_path: Path) -> None:
    """With ``metrics_linger_s = 0`` shutdown does not wait for a scrape: the port is closed
    when it returns."""
    session = _session(tmp_path, 0)
    endpoint = _endpoint(session)
    _count(session, "success")
    session.shutdown()
    assert endpoint.final and not endpoint.final_scraped
    assert _refused(endpoint.port)


def test_a_linger_nobody_scrapes_ends_at_its_bound(
    tmp_path: Path, shutting_down: Callable[[TelemetrySession], threading.Thread]
) -> None:
    """Without a scrape, the endpoint stops once its linger time has passed."""
    session = _session(tmp_path, 0.5)
    endpoint = _endpoint(session)
    thread = shutting_down(session)
    thread.join(GENEROUS_S)
    assert not thread.is_alive()
    assert not endpoint.final_scraped
    assert _refused(endpoint.port)


def test_a_stop_request_ends_the_linger(
    tmp_path: Path, shutting_down: Callable[[TelemetrySession], threading.Thread]
) -> None:
    """Ctrl-C or SIGTERM (``batch.request_stop``) during the linger stops the endpoint."""
    session = _session(tmp_path, LONG_LINGER_S)
    endpoint = _endpoint(session)
    thread = shutting_down(session)
    _wait_until(lambda: endpoint.final, "frozen")
    try:
        batch.request_stop()
        thread.join(GENEROUS_S)
    finally:
        batch.reset_stop()
    assert not thread.is_alive()
    assert _refused(endpoint.port)


def test_a_stop_during_the_run_means_no_linger(
    tmp_path: Path, shutting_down: Callable[[TelemetrySession], threading.Thread]
) -> None:
    """A run that was stopped does not wait for a scrape when it ends; an endpoint started
    after the stop lingers as usual."""
    stopped = _session(tmp_path / "stopped", LONG_LINGER_S)
    try:
        batch.request_stop()
    finally:
        batch.reset_stop()
    later = _session(tmp_path / "later", LONG_LINGER_S)
    stopped.shutdown()  # returns: a lingering shutdown would block this test for 10 minutes
    assert _refused(_endpoint(stopped).port)

    thread = shutting_down(later)
    _wait_until(lambda: _endpoint(later).final, "frozen")
    assert thread.is_alive()  # lingering, until this scrape
    httpx.get(_endpoint(later).url, timeout=10)
    thread.join(GENEROUS_S)
    assert not thread.is_alive()


def test_the_linger_is_announced(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shutting_down: Callable[[TelemetrySession], threading.Thread],
) -> None:
    """One line says where the final counts are and for how long at most."""
    session = _session(tmp_path, LONG_LINGER_S)
    endpoint = _endpoint(session)
    with caplog.at_level(logging.INFO, logger="oafetch.telemetry.metrics"):
        thread = shutting_down(session)
        _wait_until(lambda: "final counts" in caplog.text, "announced")
        httpx.get(endpoint.url, timeout=10)
        thread.join(GENEROUS_S)
    assert (
        f"metrics: final counts served on {endpoint.url} until scraped, at most 600 s "
        "(--metrics-linger)"
    ) in caplog.text


def test_metrics_linger_setting(tmp_path: Path) -> None:
    """30 s by default; ``--metrics-linger`` sets it; a negative value is a config error that
    names the key and the value."""
    assert TelemetryConfig().metrics_linger_s == 30.0
    args = build_parser().parse_args(
        ["run", "ids.txt", "--out", str(tmp_path), "--metrics-port", "0", "--metrics-linger", "5"]
    )
    assert load_config(args).telemetry.metrics_linger_s == 5.0
    with pytest.raises(ConfigError) as info:
        Config.load(None, telemetry={"metrics_linger_s": -1})
    assert "telemetry.metrics_linger_s" in str(info.value) and "-1" in str(info.value)
