"""OTLP/HTTP (protobuf) export of traces and metrics to a collector, kept off the critical path.

Traces go through their *own* ``BatchSpanProcessor`` and metrics through their own
``PeriodicExportingMetricReader``, each exporter with a short timeout (``otlp_timeout_s``,
default 2 s, covering all of its retries), so a dead or hung collector costs the downloads
nothing (ending a span only appends to the batch queue) and never stalls the local store.

Shutting down is where an outage bites: the SDK's ``BatchSpanProcessor.shutdown()`` waits up to
30 s and exports every queued batch in turn. :func:`run_bounded` runs such a call in a daemon
thread and stops waiting after a deadline; the abandoned thread cannot keep the process alive.
This path may drop spans (the batch queue drops the oldest when full): the local store is the
no-loss record, the collector a live view.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from oafetch.config import TelemetryConfig
from oafetch.errors import ConfigError
from oafetch.urls import redact_url

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
#: How often metrics are pushed to the collector.
METRIC_INTERVAL_S = 15.0
#: How often queued spans are sent to the collector.
SPAN_SCHEDULE_DELAY_S = 2.0

_SIGNAL_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")


def resolve_endpoint(config: TelemetryConfig) -> str | None:
    """The collector's base URL: ``config.otlp_endpoint``, else ``$OTEL_EXPORTER_OTLP_ENDPOINT``.

    None when neither is set (no OTLP export). A URL that already names a signal path
    (``…/v1/traces``) is reduced to its base.
    """
    endpoint = config.otlp_endpoint or os.environ.get(ENDPOINT_ENV, "").strip() or None
    if endpoint is None:
        return None
    where = "telemetry.otlp_endpoint" if config.otlp_endpoint else ENDPOINT_ENV
    try:
        parts = urlsplit(endpoint)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(
            f"{where}: must be an http(s) URL of an OTLP/HTTP collector such as "
            f"http://localhost:4318 (got {redact_url(endpoint)!r})"
        )
    endpoint = endpoint.rstrip("/")
    for path in _SIGNAL_PATHS:
        if endpoint.endswith(path):
            endpoint = endpoint[: -len(path)]
    return endpoint


def signal_url(endpoint: str, signal: str) -> str:
    """``<endpoint>/v1/<signal>`` (``signal``: ``traces`` or ``metrics``)."""
    return f"{endpoint.rstrip('/')}/v1/{signal}"


def span_processor(
    endpoint: str, timeout_s: float, *, meter_provider: MeterProvider | None = None
) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` exporting to ``<endpoint>/v1/traces`` within ``timeout_s``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = OTLPSpanExporter(
        endpoint=signal_url(endpoint, "traces"), timeout=timeout_s, meter_provider=meter_provider
    )
    return BatchSpanProcessor(
        exporter,
        schedule_delay_millis=SPAN_SCHEDULE_DELAY_S * 1000,
        meter_provider=meter_provider,
    )


def metric_reader(
    endpoint: str, timeout_s: float, *, interval_s: float = METRIC_INTERVAL_S
) -> PeriodicExportingMetricReader:
    """A periodic reader pushing to ``<endpoint>/v1/metrics``; histograms stay explicit-bucket."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation

    exporter = OTLPMetricExporter(
        endpoint=signal_url(endpoint, "metrics"),
        timeout=timeout_s,
        # OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION must not make them exponential.
        preferred_aggregation={Histogram: ExplicitBucketHistogramAggregation()},
    )
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=interval_s * 1000,
        export_timeout_millis=timeout_s * 1000,
    )


def run_bounded(fn: Callable[[], object], what: str) -> threading.Thread:
    """Start ``fn()`` in a daemon thread; the caller joins it for as long as it can afford.

    Returns:
        The started thread (``join(timeout)`` it; ``is_alive()`` afterwards means abandoned).
    """

    def target() -> None:
        try:
            fn()
        except Exception:
            log.exception("oafetch: %s failed", what)

    thread = threading.Thread(target=target, name=f"oafetch-{what}", daemon=True)
    thread.start()
    return thread


def join_all(threads: list[threading.Thread], deadline: float) -> bool:
    """Join ``threads`` until the ``time.monotonic()`` ``deadline``; True if all finished."""
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    abandoned = [t.name for t in threads if t.is_alive()]
    if abandoned:
        log.warning(
            "oafetch: gave up waiting for %s (collector unreachable or hung); "
            "the local store is complete",
            ", ".join(abandoned),
        )
    return not abandoned
