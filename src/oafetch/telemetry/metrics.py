"""Metric Views (explicit buckets only) and the live Prometheus endpoint.

An exponential histogram breaks the whole Prometheus scrape, and the instrumentation's default
buckets stop at 10 s (too short for a PDF), so every histogram oafetch knows gets an explicit
bucket View here; ``http.client.request.duration`` also keeps only low-cardinality attributes
(no ``url.*``). Every View selects oafetch's meter (scope ``oafetch``): oafetch's CLIENT-span
transport records its request durations there (:mod:`~oafetch.telemetry.client_spans`). An
application that owns its ``MeterProvider`` passes :func:`metric_views` to it: Views cannot be
added to a provider that already exists.

The Prometheus endpoint serves a ``PrometheusMetricReader`` registered on its *own*
``CollectorRegistry`` (never the process-global one), without ``otel_scope_*`` labels and without
``target_info``. When the run ends it collects once more and keeps serving those final counts
until one scrape has fetched them (at most ``telemetry.metrics_linger_s``), then stops.

Prometheus names: ``http_client_request_duration_seconds``, ``oafetch_download_size_bytes``,
``oafetch_rate_limit_delay_seconds``, ``oafetch_http_failure_duration_seconds``,
``oafetch_downloads_total``, ``oafetch_breaker_transitions_total``,
``oafetch_fallback_attempts_total``, ``oafetch_retries_total``, ``oafetch_identity_checks_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from oafetch.telemetry import names

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

KIB = 1024

#: Seconds buckets for request durations, up to 120 s (a large PDF on a slow host).
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
#: Seconds buckets for politeness waits (a token every few seconds is normal, minutes are not).
DELAY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
#: Byte buckets from 1 KiB to 1 GiB, each 4 times the one before.
SIZE_BUCKETS_BY: tuple[float, ...] = tuple(float(KIB * 4**i) for i in range(11))

#: Attributes kept on ``http.client.request.duration`` (``url.*`` and ports dropped).
HTTP_DURATION_ATTRIBUTES = frozenset(
    {
        names.HTTP_REQUEST_METHOD,
        names.HTTP_RESPONSE_STATUS_CODE,
        names.SERVER_ADDRESS,
        names.ERROR_TYPE,
        "network.protocol.version",
    }
)
#: Attributes of ``oafetch.http.failure.duration`` (recorded by the stamping processor).
FAILURE_ATTRIBUTES = frozenset({names.HTTP_REQUEST_METHOD, names.SERVER_ADDRESS, names.ERROR_TYPE})


def metric_views() -> list[View]:
    """The Views oafetch's histograms need: explicit buckets, low-cardinality attributes.

    Each selects its instrument by name *and* by oafetch's meter, so the application's own
    instruments (its ``http.client.request.duration`` from its own httpx instrumentation, say)
    are never reshaped. Pass them to the application's ``MeterProvider(views=…)`` when
    embedding oafetch; a provider without them still works (default buckets).
    """
    return [
        View(
            meter_name=names.INSTRUMENTATION_SCOPE,
            instrument_name=names.METRIC_HTTP_DURATION,
            attribute_keys=set(HTTP_DURATION_ATTRIBUTES),
            aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S),
        ),
        View(
            meter_name=names.INSTRUMENTATION_SCOPE,
            instrument_name=names.METRIC_DOWNLOAD_SIZE,
            aggregation=ExplicitBucketHistogramAggregation(SIZE_BUCKETS_BY),
        ),
        View(
            meter_name=names.INSTRUMENTATION_SCOPE,
            instrument_name=names.METRIC_RATE_DELAY,
            aggregation=ExplicitBucketHistogramAggregation(DELAY_BUCKETS_S),
        ),
        View(
            meter_name=names.INSTRUMENTATION_SCOPE,
            instrument_name=names.METRIC_TRANSPORT_FAILURE_DURATION,
            attribute_keys=set(FAILURE_ATTRIBUTES),
            aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S),
        ),
    ]


#: How often a lingering endpoint looks whether a stop was requested (s).
_STOP_POLL_S = 0.1
#: Stop requests so far (:func:`stop_lingering`); an endpoint lingers only if none came since
#: it started. A counter, not an Event: nothing to reset, and safe to bump in a signal handler.
_stop_requests = 0


def stop_lingering() -> None:
    """End the linger of every live endpoint started so far (a stop: Ctrl-C, SIGTERM).

    An endpoint that is lingering stops within about 0.1 s; one whose run is still going will
    not linger when it closes. Endpoints started afterwards are not affected. Takes no lock, so
    a signal handler may call it.
    """
    global _stop_requests
    _stop_requests += 1


class PrometheusEndpoint:
    """A live ``/metrics`` endpoint over its own registry, fed by a ``PrometheusMetricReader``.

    While the run goes on, every scrape collects the reader afresh (on the server's thread).
    When the run ends, :meth:`freeze` collects once more and from then on every scrape gets
    those final counts: the reader's shutdown (with its ``MeterProvider``) calls it, just before
    the reader leaves the registry. :meth:`close` then keeps serving them until one scrape has
    fetched them, at most ``linger_s`` seconds, so that a Prometheus scraping every 15 s still
    sees how the run ended; then it stops and releases the port.

    Attributes:
        reader: the reader to give the ``MeterProvider``.
        registry: the ``CollectorRegistry`` the reader is registered on (never the global one).
        host, port: where it listens (``port`` is the bound one when 0 was asked for).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        """Use :meth:`start`."""
        self.registry = registry
        self.reader = _final_counts_reader(registry, on_shutdown=self.freeze)
        self.host = ""
        self.port = 0
        self._lock = threading.Lock()
        self._final: list[Metric] | None = None
        self._final_served = threading.Event()
        self._stops_at_start = _stop_requests
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def start(cls, host: str, port: int) -> PrometheusEndpoint:
        """Create the reader and serve it on ``host:port`` (port 0: any free port).

        Raises:
            ConfigError: the address cannot be bound (in use, not local, no permission).
        """
        from prometheus_client import CollectorRegistry, make_wsgi_app

        from oafetch.telemetry import _wsgi

        endpoint = cls(CollectorRegistry(auto_describe=True))
        exposed = CollectorRegistry(auto_describe=False)
        exposed.register(_Current(endpoint))
        inner = make_wsgi_app(exposed)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            # Decided before collecting: once final, the counts never change back.
            final = endpoint.final
            body: Iterable[bytes] = inner(environ, start_response)
            if final and environ.get("PATH_INFO") != "/favicon.ico":
                return _wsgi.after_sent(body, endpoint._final_served.set)
            return body

        try:
            server = _wsgi.bind(host, port, app)
        except OSError as exc:
            from oafetch.errors import ConfigError

            raise ConfigError(
                f"telemetry.metrics_port: cannot serve live metrics on {host}:{port}: "
                f"{exc.strerror or exc}; choose another --metrics-port (0 picks a free one) "
                "or stop what is using it"
            ) from None
        endpoint.host, endpoint.port = host, int(server.server_port)
        endpoint._server = server
        endpoint._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="oafetch-metrics",
            daemon=True,
        )
        endpoint._thread.start()
        return endpoint

    @property
    def url(self) -> str:
        """Where to scrape."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def final(self) -> bool:
        """True once the endpoint serves the run's final counts (see :meth:`freeze`)."""
        return self._final is not None

    @property
    def final_scraped(self) -> bool:
        """True once a scrape has fetched the final counts, whole."""
        return self._final_served.is_set()

    def collect(self) -> list[Metric]:
        """What a scrape sees now: the reader's current counts, or the final ones."""
        with self._lock:
            if self._final is not None:
                return self._final
            return list(self.registry.collect())

    def freeze(self) -> None:
        """Collect once more and serve these counts, unchanged, from now on. Idempotent.

        Blocks while a scrape is collecting. The reader calls it as it shuts down; call it
        yourself only when every count of the run has been recorded.
        """
        with self._lock:
            if self._final is None:
                self._final = list(self.registry.collect())

    def close(self, linger_s: float = 0.0) -> None:
        """Serve the final counts until one scrape has fetched them, then stop. Idempotent.

        Freezes the counts (unless the reader's shutdown did), then, when ``linger_s`` > 0 and no
        scrape has fetched them yet, logs where they are and waits until one has, ``linger_s``
        seconds have passed or a stop was requested (:func:`stop_lingering`). Then stops the
        server and releases the port. Blocks the caller for at most about ``linger_s`` seconds.
        Never raises (a failure is logged), except a ``KeyboardInterrupt`` during the wait.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.freeze()
            if linger_s > 0 and not self.final_scraped and not self._stop_requested():
                log.info(
                    "metrics: final counts served on %s until scraped, at most %g s "
                    "(--metrics-linger)",
                    self.url,
                    linger_s,
                )
                self._linger(linger_s)
        except Exception:  # pragma: no cover - defensive
            log.exception("oafetch: could not serve the final metrics")
        finally:
            self._stop()

    def _stop_requested(self) -> bool:
        return _stop_requests != self._stops_at_start

    def _linger(self, linger_s: float) -> None:
        deadline = time.monotonic() + linger_s
        while not self._stop_requested():
            left = deadline - time.monotonic()
            if left <= 0 or self._final_served.wait(min(left, _STOP_POLL_S)):
                return

    def _stop(self) -> None:
        try:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=2.0)
        except Exception:  # pragma: no cover - defensive
            log.exception("oafetch: could not stop the Prometheus endpoint")


class _Current:
    """The collector a scrape reads: whatever the endpoint serves at that moment."""

    def __init__(self, endpoint: PrometheusEndpoint) -> None:
        self._endpoint = endpoint

    def collect(self) -> Iterable[Metric]:
        return self._endpoint.collect()


def _final_counts_reader(
    registry: CollectorRegistry, *, on_shutdown: Callable[[], None]
) -> PrometheusMetricReader:
    """A ``PrometheusMetricReader`` on ``registry`` (no ``target_info``, no ``otel_scope_*``
    labels) that calls ``on_shutdown`` as it shuts down, while it can still collect: the
    reader's own shutdown takes it out of the registry."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    class FinalCountsReader(PrometheusMetricReader):
        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            try:
                on_shutdown()
            except Exception:  # pragma: no cover - defensive
                log.exception("oafetch: could not collect the final metrics")
            super().shutdown(timeout_millis=timeout_millis, **kwargs)

    return FinalCountsReader(disable_target_info=True, scope_info_enabled=False, registry=registry)
