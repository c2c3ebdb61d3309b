"""OTLP export (http/protobuf or gRPC) of traces and metrics to a collector, off the critical path.

Where to and how is decided by :mod:`~oafetch.telemetry.otel_env` (the ``OTEL_*`` variables and
``[telemetry]``); this module builds the exporters, processor and reader it asks for.

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
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oafetch.telemetry.otel_env import Otlp

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger(__name__)

#: How often metrics are pushed to the collector (unless OTEL_METRIC_EXPORT_INTERVAL says).
METRIC_INTERVAL_S = 15.0
#: How often queued spans are sent to the collector (unless OTEL_BSP_SCHEDULE_DELAY says).
SPAN_SCHEDULE_DELAY_S = 2.0


def _span_exporter(target: Otlp, timeout_s: float | None, meter_provider: Any) -> SpanExporter:
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=target.endpoint, timeout=timeout_s)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=target.endpoint, timeout=timeout_s, meter_provider=meter_provider
    )


def span_processor(
    target: Otlp,
    timeout_s: float | None,
    *,
    meter_provider: MeterProvider | None = None,
    batch_from_env: bool = False,
) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` exporting to ``target`` within ``timeout_s``.

    ``timeout_s`` None: the exporter reads ``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT``;
    ``batch_from_env``: the processor reads the ``OTEL_BSP_*`` variables.
    """
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = _span_exporter(target, timeout_s, meter_provider)
    if batch_from_env:
        return BatchSpanProcessor(exporter)
    return BatchSpanProcessor(
        exporter,
        schedule_delay_millis=SPAN_SCHEDULE_DELAY_S * 1000,
        meter_provider=meter_provider,
    )


def metric_reader(
    target: Otlp, timeout_s: float | None, *, interval_from_env: bool = False
) -> PeriodicExportingMetricReader:
    """A periodic reader pushing to ``target``; histograms stay explicit-bucket.

    ``interval_from_env``: the reader reads ``OTEL_METRIC_EXPORT_INTERVAL``/``_TIMEOUT``
    (else every :data:`METRIC_INTERVAL_S`, within ``timeout_s``).
    """
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.metrics.view import Aggregation, ExplicitBucketHistogramAggregation

    # OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION must not make them exponential.
    preferred: dict[type, Aggregation] = {Histogram: ExplicitBucketHistogramAggregation()}
    exporter: MetricExporter
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        exporter = GrpcMetricExporter(
            endpoint=target.endpoint, timeout=timeout_s, preferred_aggregation=preferred
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=target.endpoint, timeout=timeout_s, preferred_aggregation=preferred
        )
    if interval_from_env:
        return PeriodicExportingMetricReader(exporter)
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=METRIC_INTERVAL_S * 1000,
        export_timeout_millis=(timeout_s or 10.0) * 1000,
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
