"""``oafetch telemetry serve``: a Prometheus endpoint over the store, for finished and running runs.

A custom collector on its **own** ``CollectorRegistry`` (never the global one, which a live run's
OpenTelemetry Prometheus reader may use in the same process) turns the store into gauges per run.
Finished runs are read from their ``run_summary`` row and computed once (their per-host and
per-role breakdowns too: a finished run never changes); running runs (``finished_at`` NULL) are
computed live from the event tables. A scrape never costs more than one refresh per poll
interval: between refreshes it serves the cached figures (and the interval stretches to five
times a refresh's duration when a huge running run makes refreshes slow).

Exposed series (``METRIC_NAMES``; docs/ANALYTICS.md documents them), in Prometheus base units
(seconds, bytes, ratios in [0, 1]) so that ``promtool check metrics`` finds nothing to say:

- ``oafetch_run_yield_ratio{run_id}``, ``oafetch_run_cache_hit_ratio{run_id}``,
  ``oafetch_run_dedupe_saved_bytes{run_id}``, ``oafetch_run_corrupt_artifacts{run_id}``,
  ``oafetch_run_identity_mismatch_per_1k{run_id}``
- ``oafetch_run_ttfp_p50_seconds{run_id}``, ``oafetch_run_ttfp_p95_seconds{run_id}``
  (nearest-rank percentiles are not a summary's quantiles: two gauges, no ``quantile`` label)
- ``oafetch_run_rate_delay_p95_seconds{run_id,role}``
- ``oafetch_host_http429_ratio{run_id,host}``
- ``oafetch_breaker_open_events_total{run_id,host}`` (a counter)
- ``oafetch_run_running{run_id}`` (1 while the run is unfinished), ``oafetch_store_up`` (0 when
  the last refresh could not read the store; the last good figures are still served)

Each is computed from its ``run_summary`` column (``yield_pct`` / 100, ``ttfp_p50_ms`` / 1000,
``dedupe_saved_mb`` x 10^6 …). A figure with nothing to measure (no metadata requests …) is
left out rather than exported as 0.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oafetch.telemetry import _wsgi, store, summary
from oafetch.telemetry.store import StoreError

log = logging.getLogger(__name__)

DEFAULT_PORT = 9108
DEFAULT_HOST = "127.0.0.1"
DEFAULT_POLL_S = 10.0
#: The refresh interval is at least this many times the last refresh's duration.
MAX_BUSY_FACTOR = 5.0

_MS = 1000  # run_summary durations are milliseconds; Prometheus wants seconds
_PCT = 100  # … and ratios, not percentages


def _column(name: str, per: float = 1) -> Callable[[dict[str, Any]], float | None]:
    """A figure read from a ``run_summary`` column, divided into base units (None stays None).

    Dividing (900 / 1000) rather than multiplying by the inverse keeps 0.9 exactly 0.9.
    """

    def figure(row: dict[str, Any]) -> float | None:
        value = row.get(name)
        return None if value is None else float(value) / per

    return figure


def _yield_ratio(row: dict[str, Any]) -> float | None:
    # From the counts rather than yield_pct / 100: exactly successes / works, as a live
    # endpoint's counters give it.
    total, success = row.get("artifacts_total"), row.get("artifacts_success")
    return None if not total else (success or 0) / total


def _saved_bytes(row: dict[str, Any]) -> float | None:
    # dedupe_saved_mb is a sum of whole bytes / 10^6: back to that whole number.
    mb = row.get("dedupe_saved_mb")
    return None if mb is None else float(round(float(mb) * summary.BYTES_PER_MB))


#: Per-run gauges read from ``run_summary``: name → (help, figure).
_RUN_GAUGES: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
    "oafetch_run_yield_ratio": (
        "Share of the run's works that succeeded (downloads rows with outcome success / all).",
        _yield_ratio,
    ),
    "oafetch_run_ttfp_p50_seconds": (
        "Time to first PDF of successful works, nearest-rank median, in seconds.",
        _column("ttfp_p50_ms", _MS),
    ),
    "oafetch_run_ttfp_p95_seconds": (
        "Time to first PDF of successful works, nearest-rank 95th percentile, in seconds.",
        _column("ttfp_p95_ms", _MS),
    ),
    "oafetch_run_cache_hit_ratio": (
        "Share of metadata requests served from cache or revalidated.",
        _column("cache_hit_pct", _PCT),
    ),
    "oafetch_run_dedupe_saved_bytes": (
        "Bytes not stored twice thanks to dedupe.",
        _saved_bytes,
    ),
    "oafetch_run_corrupt_artifacts": (
        "Successful works whose file is missing or does not match its record.",
        _column("corruption_count"),
    ),
    "oafetch_run_identity_mismatch_per_1k": (
        "Files the identity check quarantined (not the work) per 1,000 works.",
        _column("identity_mismatch_per_1k"),
    ),
}
_GAUGES: dict[str, str] = {
    **{name: doc for name, (doc, _) in _RUN_GAUGES.items()},
    "oafetch_run_rate_delay_p95_seconds": (
        "Rate-limit wait per request, nearest-rank 95th percentile per request role, in seconds."
    ),
    "oafetch_host_http429_ratio": "Share of network requests to a host answered 429.",
    "oafetch_run_running": "1 while the run has not finished (figures computed live).",
    "oafetch_store_up": "1 when the last refresh read the store, 0 when it failed.",
}
_BREAKER = "oafetch_breaker_open_events"
#: Every series name the endpoint exposes (as Prometheus sees them).
METRIC_NAMES: tuple[str, ...] = (*_GAUGES, f"{_BREAKER}_total")


@dataclass(frozen=True)
class RunFigures:
    """Everything the endpoint exposes about one run."""

    run_id: str
    running: bool
    summary: dict[str, Any]
    http429_by_host: dict[str, float] = field(default_factory=dict)
    opens_by_host: dict[str, int] = field(default_factory=dict)
    delay_p95_by_role: dict[str, float] = field(default_factory=dict)


def run_figures(conn: sqlite3.Connection, run: store.RunInfo, out_dir: Path) -> RunFigures:
    """Figures of one run: the stored summary when finished, else computed from the tables."""
    row = None
    if not run.running:
        cur = conn.execute("SELECT * FROM run_summary WHERE run_id = ?", (run.run_id,))
        values = cur.fetchone()
        if values is not None:
            row = {d[0]: v for d, v in zip(cur.description, values, strict=True)}
    if row is None or row.get("artifacts_total") is None:
        row = summary.compute_run_summary(conn, run.run_id, out_dir=out_dir)
    return RunFigures(
        run_id=run.run_id,
        running=run.running,
        summary=row,
        http429_by_host=summary.http_429_ratio_by_host(conn, run.run_id),
        opens_by_host=summary.breaker_opens_by_host(conn, run.run_id),
        delay_p95_by_role=summary.rate_delay_p95_by_role(conn, run.run_id),
    )


class StoreCollector(Collector):
    """A prometheus_client collector over one store; refreshes at most once per ``poll_s``.

    Thread-safe: scrapes may arrive on several server threads; one refreshes, the others wait
    for it. Each refresh opens its own read-only connection (on the scraping thread).
    """

    def __init__(
        self,
        db_path: Path,
        *,
        poll_s: float = DEFAULT_POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db_path = db_path
        self._poll_s = poll_s
        self._interval = poll_s
        self._clock = clock
        self._lock = threading.Lock()
        self._refreshed_at: float | None = None
        self._up = False
        self._figures: list[RunFigures] = []
        self._finished: dict[tuple[str, float], RunFigures] = {}
        self._warned = False

    def describe(self) -> Iterable[Metric]:
        """The metric names, without reading the store (the registry calls this once)."""
        return list(self._families([], up=True))

    def collect(self) -> Iterable[Metric]:
        """The current figures (refreshing them first when the cached ones are too old)."""
        with self._lock:
            now = self._clock()
            if self._refreshed_at is None or now - self._refreshed_at >= self._interval:
                started = time.perf_counter()
                self._refresh()
                self._refreshed_at = now
                # A huge running run can take seconds to compute: never spend more than about
                # a fifth of the time computing, whatever the poll interval asked for.
                spent = time.perf_counter() - started
                self._interval = max(self._poll_s, MAX_BUSY_FACTOR * spent)
            figures, up = list(self._figures), self._up
        return list(self._families(figures, up=up))

    def _refresh(self) -> None:
        try:
            with contextlib.closing(store.open_readonly(self._db_path)) as conn:
                figures = []
                for run in store.list_runs(conn):
                    key = (run.run_id, run.finished_at or 0.0)
                    cached = None if run.running else self._finished.get(key)
                    if cached is None:
                        cached = run_figures(conn, run, self._db_path.parent)
                        if not run.running:
                            self._finished[key] = cached
                    figures.append(cached)
        except (StoreError, sqlite3.Error) as exc:
            if not self._warned:
                log.warning("cannot read telemetry store %s: %s", self._db_path, exc)
                self._warned = True
            self._up = False
            return
        self._figures, self._up, self._warned = figures, True, False

    def _families(self, runs: list[RunFigures], *, up: bool) -> Iterator[Metric]:
        fam = {
            name: GaugeMetricFamily(name, doc, labels=_labels(name))
            for name, doc in _GAUGES.items()
            if name != "oafetch_store_up"
        }
        breaker = CounterMetricFamily(
            _BREAKER, "Circuit-breaker openings per host during the run.", labels=["run_id", "host"]
        )
        for run in runs:
            s, rid = run.summary, run.run_id
            for name, (_, figure) in _RUN_GAUGES.items():
                _add(fam[name], [rid], figure(s))
            for role, value in sorted(run.delay_p95_by_role.items()):
                _add(fam["oafetch_run_rate_delay_p95_seconds"], [rid, role], value, _MS)
            for host, ratio in sorted(run.http429_by_host.items()):
                _add(fam["oafetch_host_http429_ratio"], [rid, host], ratio)
            for host, opens in sorted(run.opens_by_host.items()):
                breaker.add_metric([rid, host], opens)
            _add(fam["oafetch_run_running"], [rid], 1 if run.running else 0)
        yield from fam.values()
        yield breaker
        yield GaugeMetricFamily("oafetch_store_up", _GAUGES["oafetch_store_up"], value=int(up))


def _labels(name: str) -> list[str]:
    extra = {
        "oafetch_run_rate_delay_p95_seconds": ["role"],
        "oafetch_host_http429_ratio": ["host"],
    }
    return ["run_id", *extra.get(name, [])]


def _add(family: GaugeMetricFamily, labels: list[str], value: float | None, per: float = 1) -> None:
    if value is not None:
        family.add_metric(labels, float(value) / per)


class MetricsServer:
    """An HTTP server exposing one store's figures at ``/metrics`` (any path, in fact).

    Binds at construction (port 0 picks a free port: see ``port``). ``serve_forever`` blocks;
    ``start`` runs it on a daemon thread; ``shutdown`` stops it and closes the socket. Also a
    context manager (start on enter, shut down on exit).

    Raises:
        StoreError: the store does not exist or is not an oafetch store.
        OSError: the address cannot be bound (in use, not local …).
    """

    def __init__(
        self,
        db: str | Path,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        self.db_path = store.resolve_db_path(db)
        store.open_readonly(self.db_path).close()  # fail now, not on the first scrape
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = StoreCollector(self.db_path, poll_s=poll_s)
        self.registry.register(self.collector)
        self._httpd = _wsgi.bind(host, port, make_wsgi_app(self.registry))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._httpd.server_port)

    @property
    def url(self) -> str:
        """The metrics URL."""
        return _wsgi.url_of(self._httpd)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (from another thread) or KeyboardInterrupt."""
        self._httpd.serve_forever(poll_interval=0.2)

    def start(self) -> MetricsServer:
        """Serve on a daemon thread and return self."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="oafetch-telemetry-serve", daemon=True
        )
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and release the socket (idempotent)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
