"""What a session exports, built from :mod:`~oafetch.telemetry.otel_env`'s settings.

The resource, the metric readers (live Prometheus endpoint, OTLP, console), the exporting span
processor (OTLP and/or console, behind the export sampler) and the one exception the SDK needs
to keep oafetch's local store when ``OTEL_SDK_DISABLED=true``. The local store itself is wired
by :mod:`~oafetch.telemetry.setup`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry.util.types import AttributeValue

from oafetch._version import __version__
from oafetch.config import TelemetryConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from oafetch.telemetry.metrics import PrometheusEndpoint
    from oafetch.telemetry.otel_env import OtelSettings

log = logging.getLogger(__name__)


def resource(config: TelemetryConfig, extra: Mapping[str, AttributeValue] | None) -> Resource:
    """oafetch's resource: ``service.name`` from the config and ``service.version`` from the
    package, unless ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` say otherwise (they win,
    as the specification has it)."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    from_env = dict(OTELResourceDetector().detect().attributes)
    return Resource.create(
        {
            **(extra or {}),
            "service.name": config.service_name,
            "service.version": __version__,
            **from_env,
        }
    )


def metric_readers(
    config: TelemetryConfig, settings: OtelSettings
) -> tuple[PrometheusEndpoint | None, list[MetricReader]]:
    """The live Prometheus endpoint and the metric readers the settings ask for."""
    from oafetch.telemetry import otlp
    from oafetch.telemetry.metrics import PrometheusEndpoint

    readers: list[MetricReader] = []
    prometheus = None
    if settings.prometheus_port is not None:
        prometheus = PrometheusEndpoint.start(settings.prometheus_host, settings.prometheus_port)
        readers.append(prometheus.reader)
    if settings.metrics_otlp is not None:
        timeout = None if "metrics" in settings.timeout_from_env else config.otlp_timeout_s
        readers.append(
            otlp.metric_reader(
                settings.metrics_otlp,
                timeout,
                interval_from_env=settings.metric_interval_from_env,
            )
        )
    if settings.metrics_console:
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )

        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    return prometheus, readers


def span_processor(
    config: TelemetryConfig, settings: OtelSettings, meter_provider: MeterProvider
) -> SpanProcessor | None:
    """The span processor that exports (OTLP and/or console), behind the export sampler."""
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

    from oafetch.telemetry import otlp
    from oafetch.telemetry.sampling import ExportSampler, sampler_for

    processors: list[SpanProcessor] = []
    if settings.traces_otlp is not None:
        timeout = None if "traces" in settings.timeout_from_env else config.otlp_timeout_s
        processors.append(
            otlp.span_processor(
                settings.traces_otlp,
                timeout,
                meter_provider=meter_provider,
                batch_from_env=settings.span_batch_from_env,
            )
        )
    if settings.traces_console:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

        processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    if not processors:
        return None
    exporting: SpanProcessor = processors[0]
    if len(processors) > 1:
        multi = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        for processor in processors:
            multi.add_span_processor(processor)
        exporting = multi
    if settings.sampling.exports_all:
        return exporting
    return ExportSampler(exporting, sampler_for(settings.sampling))


def keep_local_store(tracer_provider: TracerProvider) -> None:
    """``OTEL_SDK_DISABLED=true`` makes the SDK's tracers no-ops; oafetch's own provider (never
    the global one, never exporting then) keeps recording, for the local store only."""
    if getattr(tracer_provider, "_disabled", False):
        tracer_provider._disabled = False
    log.warning(
        "oafetch: OTEL_SDK_DISABLED=true: no OpenTelemetry export and no live metrics; "
        "the local store (telemetry.sqlite, spans.jsonl) is still written"
    )
