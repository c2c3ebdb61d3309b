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
``target_info``.

Prometheus names: ``http_client_request_duration_seconds``, ``oafetch_download_size_bytes``,
``oafetch_rate_limit_delay_seconds``, ``oafetch_http_failure_duration_seconds``,
``oafetch_downloads_total``, ``oafetch_breaker_transitions_total``,
``oafetch_fallback_attempts_total``, ``oafetch_retries_total``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from oafetch.telemetry import names

if TYPE_CHECKING:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry

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


@dataclass
class PrometheusEndpoint:
    """A ``/metrics`` HTTP endpoint over its own registry; :meth:`close` stops it."""

    reader: PrometheusMetricReader
    registry: CollectorRegistry
    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @classmethod
    def start(cls, host: str, port: int) -> PrometheusEndpoint:
        """Create the reader and serve it on ``host:port`` (port 0: any free port).

        Raises:
            ConfigError: the address cannot be bound (in use, not local, no permission).
        """
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=registry
        )
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            from oafetch.errors import ConfigError

            raise ConfigError(
                f"telemetry.metrics_port: cannot serve live metrics on {host}:{port}: "
                f"{exc.strerror or exc}; choose another --metrics-port (0 picks a free one) "
                "or stop what is using it"
            ) from None
        bound_port = int(server.server_address[1])
        return cls(reader, registry, host, bound_port, server, thread)

    @property
    def url(self) -> str:
        """Where to scrape."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (the reader is shut down with its ``MeterProvider``)."""
        try:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=2.0)
        except Exception:  # pragma: no cover - defensive
            log.exception("oafetch: could not stop the Prometheus endpoint")
