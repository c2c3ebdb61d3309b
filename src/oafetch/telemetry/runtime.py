"""The telemetry handle the hot path holds: a tracer and oafetch's metric instruments.

Only the OpenTelemetry *API* is used here. ``Telemetry.noop()`` costs nothing; the SDK, its
processors and exporters are wired elsewhere (``oafetch.telemetry.setup``) and handed in as
providers. ``activate()`` makes one handle the fallback for the ``emit_*`` helpers, which plug-in
code calls without a handle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import Counter, Histogram, MeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from oafetch._version import __version__
from oafetch.telemetry import names


@dataclass(frozen=True)
class Instruments:
    """oafetch's own metric instruments (names in :mod:`oafetch.telemetry.names`)."""

    downloads: Counter
    download_size: Histogram
    rate_delay: Histogram
    breaker_transitions: Counter
    fallback_attempts: Counter
    retries: Counter
    failure_duration: Histogram
    identity_checks: Counter

    @classmethod
    def create(cls, meter: metrics.Meter) -> Instruments:
        return cls(
            downloads=meter.create_counter(
                names.METRIC_DOWNLOADS, unit="{download}", description="Works finished, by outcome."
            ),
            download_size=meter.create_histogram(
                names.METRIC_DOWNLOAD_SIZE, unit="By", description="Size of stored bodies."
            ),
            rate_delay=meter.create_histogram(
                names.METRIC_RATE_DELAY,
                unit="s",
                description="Time each request waited for its rate slot (0 if none).",
            ),
            breaker_transitions=meter.create_counter(
                names.METRIC_BREAKER_TRANSITIONS,
                unit="{transition}",
                description="Circuit-breaker state changes.",
            ),
            fallback_attempts=meter.create_counter(
                names.METRIC_FALLBACK_ATTEMPTS,
                unit="{attempt}",
                description="Sources tried by the fallback orchestrator.",
            ),
            retries=meter.create_counter(
                names.METRIC_RETRIES, unit="{retry}", description="HTTP attempts that were retried."
            ),
            failure_duration=meter.create_histogram(
                names.METRIC_TRANSPORT_FAILURE_DURATION,
                unit="s",
                description="Duration of requests that failed in the transport (no response).",
            ),
            identity_checks=meter.create_counter(
                names.METRIC_IDENTITY_CHECKS,
                unit="{check}",
                description="Stored PDFs checked against their work, by identity verdict.",
            ),
        )


@dataclass(frozen=True)
class Telemetry:
    """A tracer and instruments; ``enabled`` is False for the no-op handle."""

    tracer: Tracer
    instruments: Instruments
    enabled: bool
    #: The providers the handle was built over (``None``: the global ones, resolved at use):
    #: oafetch's CLIENT spans and the duration histogram go to these.
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    @classmethod
    def from_providers(
        cls,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> Telemetry:
        """Build a handle over the given providers (``None``: the global ones)."""
        tracer = trace.get_tracer(
            names.INSTRUMENTATION_SCOPE,
            __version__,
            tracer_provider=tracer_provider,
            schema_url=names.SCHEMA_URL,
        )
        meter = metrics.get_meter(
            names.INSTRUMENTATION_SCOPE, __version__, meter_provider, schema_url=names.SCHEMA_URL
        )
        return cls(
            tracer=tracer,
            instruments=Instruments.create(meter),
            enabled=True,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

    @classmethod
    def noop(cls) -> Telemetry:
        """A handle whose every call does nothing (telemetry disabled)."""
        return _NOOP


_NOOP = Telemetry(
    tracer=trace.NoOpTracer(),
    instruments=Instruments.create(metrics.NoOpMeter(names.INSTRUMENTATION_SCOPE)),
    enabled=False,
)

_lock = threading.Lock()
_active: Telemetry = _NOOP


def activate(handle: Telemetry) -> None:
    """Make ``handle`` the one the ``emit_*`` helpers fall back to."""
    global _active
    with _lock:
        _active = handle


def active() -> Telemetry:
    """The handle last activated (the no-op handle if none)."""
    return _active
