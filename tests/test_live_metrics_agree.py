"""A sandbox batch with the live endpoint: what a scrape sees after the run is what the store says.

One run over a small sandbox corpus (part of it stored by an earlier run, so some works are
resumed) serves live metrics on 127.0.0.1. Once the run has ended — the endpoint lingers with
the final counts — one scrape is taken and compared with the run's rows in ``telemetry.sqlite``:
counts exactly, the rate-delay p95 by the bucket its nearest rank falls in. Prometheus' own
tools then check the scraped text (``promtool check metrics``) and evaluate the Grafana
dashboard's live queries on it (``promtool test rules``): each must give the store's figure.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import promtool
from oafetch import Downloader
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox
from oafetch.telemetry import serve, summary

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "oafetch.json"
GENEROUS_S = 300.0
# Faster than the sandbox's defaults, enforced server-side and configured identically in oafetch.
RATES = {
    "unpaywall": "40/s",
    "crossref": "40/s",
    "openalex": "40/s",
    "arxiv_api": "5/s",
    "arxiv": "5/s",
    "*": "20/s",
}


@dataclass(frozen=True)
class LiveRun:
    run_id: str
    db: Path
    scraped: str  # the endpoint's text, scraped after the run ended
    linger_ended_by_scrape: bool
    resumed: int  # works the earlier run stored


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    out = tmp_path_factory.mktemp("live") / "out"
    corpus = Corpus(seed=5, n_works=40)
    with Sandbox(corpus=corpus, rates=RATES, arxiv_crawl_delay=0.2) as sandbox:
        ids = [w.identifier for w in sandbox.works]
        common: dict[str, Any] = {"workers": 4, "cache": {"enabled": False}}
        # An earlier run stores some works: the scraped run counts them as resumed.
        earlier = demo_config(sandbox, out, telemetry={"enabled": False}, **common)
        with Downloader(earlier, resume=False) as dl:
            resumed = sum(r.ok for r in dl.run(ids[:8]))
        config = demo_config(
            sandbox,
            out,
            telemetry={"enabled": True, "metrics_port": 0, "metrics_linger_s": 2 * GENEROUS_S},
            # The sandbox's flapping hosts then open breakers: a figure to compare too.
            breaker={"fail_max": 1, "reset_timeout_s": 2},
            **common,
        )
        dl = Downloader(config, resume=True)
        endpoint = dl._session.prometheus  # the live endpoint this run serves
        failed: list[BaseException] = []

        def run_then_close() -> None:
            try:
                with dl:
                    list(dl.run(ids))
            except BaseException as exc:  # reported by the test thread
                failed.append(exc)

        worker = threading.Thread(target=run_then_close, name="test-run", daemon=True)
        worker.start()
        deadline = time.monotonic() + GENEROUS_S
        while not endpoint.final:  # the run ended: its counts are final
            assert worker.is_alive() or endpoint.final, f"the run failed: {failed}"
            assert time.monotonic() < deadline, "the run did not end in time"
            time.sleep(0.05)
        assert not endpoint.final_scraped
        scraped = httpx.get(endpoint.url, timeout=30).text
        worker.join(GENEROUS_S)  # well before the linger's bound: the scrape ended it
        assert not failed, failed
        return LiveRun(dl.run_id, out / "telemetry.sqlite", scraped, not worker.is_alive(), resumed)


@contextlib.contextmanager
def _store(run: LiveRun) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{run.db}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _live(run: LiveRun, name: str) -> list[tuple[str, dict[str, str], float]]:
    return promtool.samples(run.scraped, [name])


def test_the_linger_ends_with_the_scrape(live_run: LiveRun) -> None:
    """The run's endpoint stayed up after the run until it was scraped, then stopped."""
    assert live_run.linger_ended_by_scrape


def test_download_counts_and_yield_equal_the_store(live_run: LiveRun) -> None:
    """oafetch_downloads_total per (outcome, reason) equals the run's downloads rows; works,
    successes and yield equal run_summary's, exactly."""
    live: Counter[tuple[str, str]] = Counter()
    for _, labels, value in _live(live_run, "oafetch_downloads_total"):
        live[(labels["outcome"], labels["reason"])] += int(value)
    with _store(live_run) as conn:
        rows = Counter(
            {
                (outcome, reason): n
                for outcome, reason, n in conn.execute(
                    "SELECT outcome, reason, COUNT(*) FROM downloads "
                    "WHERE run_id = ? GROUP BY 1, 2",
                    (live_run.run_id,),
                )
            }
        )
        total, success, yield_pct = conn.execute(
            "SELECT artifacts_total, artifacts_success, yield_pct FROM run_summary "
            "WHERE run_id = ?",
            (live_run.run_id,),
        ).fetchone()
    assert live == rows
    assert live[("success", "resumed")] == live_run.resumed > 0  # the earlier run's works
    works = sum(live.values())
    successes = sum(n for (outcome, _), n in live.items() if outcome == "success")
    assert (works, successes) == (total, success) == (40, success)
    assert successes / works == success / total
    assert 100 * successes / works == yield_pct


def _rate_delays(run: LiveRun) -> dict[str, list[float]]:
    with _store(run) as conn:
        rows = conn.execute(
            "SELECT role, rate_delay_ms FROM http_events "
            "WHERE run_id = ? AND rate_delay_ms IS NOT NULL",
            (run.run_id,),
        ).fetchall()
    by_role: dict[str, list[float]] = {}
    for role, delay_ms in rows:
        by_role.setdefault(role, []).append(delay_ms / 1000)
    return by_role


def _p95_bucket(run: LiveRun, role: str) -> tuple[float, float]:
    """(lower, upper] of the live histogram's bucket holding the nearest-rank p95."""
    buckets = sorted(
        (float(labels["le"]), value)
        for _, labels, value in _live(run, "oafetch_rate_limit_delay_seconds_bucket")
        if labels["role"] == role
    )
    cumulative: dict[float, float] = Counter()
    for le, value in buckets:
        cumulative[le] += value  # summed over hosts
    n = cumulative[math.inf]
    rank = min(n, max(1, math.ceil(round(0.95 * n, 9))))
    bounds = sorted(cumulative)
    upper = next(le for le in bounds if cumulative[le] >= rank)
    index = bounds.index(upper)
    return (bounds[index - 1] if index else 0.0), upper


def test_rate_delay_histogram_observes_what_the_store_ranks(live_run: LiveRun) -> None:
    """One observation per request that took a rate slot, as http_events.rate_delay_ms holds
    them: equal counts per role, and the store's nearest-rank p95 lies in the bucket of the
    histogram where that rank falls."""
    stored = _rate_delays(live_run)
    assert stored, "the run made rate-limited requests"
    counts: Counter[str] = Counter()
    for _, labels, value in _live(live_run, "oafetch_rate_limit_delay_seconds_count"):
        counts[labels["role"]] += int(value)
    assert counts == {role: len(delays) for role, delays in stored.items()}
    with _store(live_run) as conn:
        p95_ms = summary.rate_delay_p95_by_role(conn, live_run.run_id)
    for role, value_ms in p95_ms.items():
        lower, upper = _p95_bucket(live_run, role)
        assert lower < value_ms / 1000 <= upper or (lower == 0 and value_ms == 0), role


@promtool.needs_promtool
def test_live_endpoint_passes_promtool(live_run: LiveRun) -> None:
    """``promtool check metrics`` on the scraped text: exit 0, nothing to say."""
    assert "oafetch_downloads_total" in live_run.scraped
    code, output = promtool.check_metrics(live_run.scraped)
    assert (code, output) == (0, "")


@promtool.needs_promtool
def test_store_endpoint_passes_promtool(live_run: LiveRun) -> None:
    """``oafetch telemetry serve`` over the same run's store: promtool has nothing to say."""
    with serve.MetricsServer(live_run.db, port=0) as server:
        text = httpx.get(server.url, timeout=30).text
    assert f'oafetch_run_yield_ratio{{run_id="{live_run.run_id}"}}' in text
    assert promtool.check_metrics(text) == (0, "")


def _dashboard_live_exprs() -> dict[str, str]:
    """Each live (``$job``) query of a panel that has a store counterpart, by panel title."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if "$job" in target["expr"] and panel["title"] in _COUNTERPARTS:
                exprs[panel["title"]] = target["expr"].replace("$job", ".*")
    assert set(exprs) == set(_COUNTERPARTS)
    return exprs


_COUNTERPARTS = (
    "Yield (live)",
    "HTTP 429 ratio per host",
    "Breaker opens",
    "Rate-limit delay p95 by role",
)
_INPUT = (
    "oafetch_downloads_total",
    "http_client_request_duration_seconds_count",
    "oafetch_http_failure_duration_seconds_count",
    "oafetch_breaker_transitions_total",
    "oafetch_rate_limit_delay_seconds_bucket",
)


@promtool.needs_promtool
def test_dashboard_live_queries_give_the_store_figures(live_run: LiveRun, tmp_path: Path) -> None:
    """Evaluated by Prometheus on the scraped series, the dashboard's live queries give the
    store's figures: yield and the 429 ratio per host exactly (same numerator, same
    denominator), breaker openings per host exactly, and a rate-delay p95 in the bucket that
    holds the store's nearest-rank p95."""
    exprs = _dashboard_live_exprs()
    with _store(live_run) as conn:
        total, success = conn.execute(
            "SELECT artifacts_total, artifacts_success FROM run_summary WHERE run_id = ?",
            (live_run.run_id,),
        ).fetchone()
        ratio_429 = summary.http_429_ratio_by_host(conn, live_run.run_id)
        opens = summary.breaker_opens_by_host(conn, live_run.run_id)
        p95_ms = summary.rate_delay_p95_by_role(conn, live_run.run_id)
    assert ratio_429, "the run made network requests"
    in_bucket = {}
    for role in p95_ms:
        lower, upper = _p95_bucket(live_run, role)
        expr = exprs["Rate-limit delay p95 by role"]
        in_bucket[role] = (
            f"((({expr}) >= bool {lower!r}) * (({expr}) <= bool {upper!r})) and on (role) "
            f'count by (role) (oafetch_rate_limit_delay_seconds_bucket{{role="{role}"}})'
        )
    expectations: list[tuple[str, dict[tuple[tuple[str, str], ...], float]]] = [
        (exprs["Yield (live)"], {(): success / total}),
        (
            exprs["HTTP 429 ratio per host"],
            {(("server_address", host),): ratio for host, ratio in ratio_429.items()},
        ),
        (exprs["Breaker opens"], {(("host", host),): float(n) for host, n in opens.items()}),
        *((expr, {(("role", role),): 1.0}) for role, expr in in_bucket.items()),
    ]
    series = [
        (name, {**labels, "job": "oafetch-live"}, value)
        for name, labels, value in promtool.samples(live_run.scraped, _INPUT)
    ]
    code, output = promtool.evaluate(tmp_path, series, expectations)
    assert code == 0, output
