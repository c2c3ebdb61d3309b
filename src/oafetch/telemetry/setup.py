"""Wiring: SDK providers, processors and exporters for a run, or for an embedding application.

:class:`TelemetrySession` is what the CLI and ``Downloader`` start when no providers are given:
its own ``TracerProvider`` (processors in order: stamping, schema → SQLite + JSONL, OTLP batch
processor if configured) and ``MeterProvider`` (oafetch's Views; the Prometheus reader and the
OTLP reader if configured). Neither is installed as the global provider. The session activates
its :class:`~oafetch.telemetry.runtime.Telemetry` handle for the ``emit_*`` helpers.

:func:`install` adds oafetch's stamping and schema processors to an application's own SDK
``TracerProvider`` instead; the application keeps its exporters and samplers (rows exist only for
sampled spans: keep oafetch's spans sampled) and passes
:func:`~oafetch.telemetry.metrics.metric_views` to its ``MeterProvider``, since Views cannot be
added to an existing one.

Shutdown is bounded: the local store is drained first (it is fast and must be complete), while
the OTLP processor and reader shut down in daemon threads that are abandoned at the deadline, so
a hung collector delays exit by at most ``timeout_s``.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry.util.types import AttributeValue

from oafetch.config import TelemetryConfig
from oafetch.telemetry import runtime
from oafetch.telemetry.runtime import Telemetry

if TYPE_CHECKING:
    import threading

    import httpx
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from oafetch.telemetry.metrics import PrometheusEndpoint
    from oafetch.telemetry.processors import SchemaProcessor

log = logging.getLogger(__name__)

#: Default bound on :meth:`TelemetrySession.shutdown`, in seconds.
SHUTDOWN_TIMEOUT_S = 3.0
#: The local drain may take longer than the OTLP bound: losing rows is worse than waiting.
_LOCAL_DRAIN_MIN_S = 30.0


def _run_logged(fn: Any, what: str) -> None:
    """``fn()`` on this thread, logged and swallowed if it raises (as ``otlp.run_bounded``)."""
    try:
        fn()
    except Exception:
        log.exception("oafetch: %s failed", what)


def _schema_processor(
    out_dir: Path, *, sqlite: bool, jsonl: bool, only_oafetch: bool = False
) -> SchemaProcessor | None:
    from oafetch.telemetry.jsonl_exporter import JSONL_FILE, JsonlSpanExporter
    from oafetch.telemetry.processors import SchemaProcessor, SchemaWriter
    from oafetch.telemetry.sqlite_exporter import SQLITE_FILE, SqliteSpanExporter

    writers: list[SchemaWriter] = []
    if sqlite:
        writers.append(SqliteSpanExporter(out_dir / SQLITE_FILE, out_dir=out_dir))
    if jsonl:
        writers.append(JsonlSpanExporter(out_dir / JSONL_FILE))
    return SchemaProcessor(writers, only_oafetch=only_oafetch) if writers else None


class _Local:
    """The stamping + schema processors and the handle: what a session and install() share."""

    def __init__(self, telemetry: Telemetry, schema: SchemaProcessor | None) -> None:
        self.telemetry = telemetry
        self.schema = schema
        self._atexit_registered = False

    @property
    def spans_dropped(self) -> int:
        return self.schema.spans_dropped if self.schema is not None else 0

    def flush_local(self, timeout_s: float) -> bool:
        return self.schema.force_flush(int(timeout_s * 1000)) if self.schema is not None else True

    def register_atexit(self, fn: Any) -> None:
        # A process that forgets shutdown() still gets its rows written, within the bound.
        atexit.register(fn)
        self._atexit_registered = True

    def unregister_atexit(self, fn: Any) -> None:
        if self._atexit_registered:
            atexit.unregister(fn)
            self._atexit_registered = False

    def deactivate(self) -> None:
        if runtime.active() is self.telemetry:
            runtime.activate(Telemetry.noop())


class TelemetrySession:
    """oafetch's own providers for one output directory. Start with :meth:`start`.

    Attributes:
        telemetry: the handle the hot path uses (``Telemetry.noop()`` when disabled).
        tracer_provider: the SDK ``TracerProvider`` (None when disabled).
        meter_provider: the SDK ``MeterProvider`` (None when disabled).
        out_dir: where ``telemetry.sqlite`` and ``spans.jsonl`` are written.
        prometheus: the live ``/metrics`` endpoint, when ``metrics_port`` is set.
    """

    def __init__(
        self,
        *,
        config: TelemetryConfig,
        out_dir: Path,
        local: _Local,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        otlp_processor: SpanProcessor | None,
        prometheus: PrometheusEndpoint | None,
    ) -> None:
        self.config = config
        self.out_dir = out_dir
        self._local = local
        self.telemetry = local.telemetry
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.prometheus = prometheus
        self._otlp_processor = otlp_processor
        self._closed = False

    @classmethod
    def start(
        cls,
        config: TelemetryConfig,
        out_dir: str | Path,
        *,
        resource_attributes: Mapping[str, AttributeValue] | None = None,
    ) -> TelemetrySession:
        """Build the providers, processors and exporters ``config`` asks for.

        Args:
            config: what to export where (``enabled``, ``sqlite``, ``jsonl``, ``otlp_endpoint``,
                ``otlp_timeout_s``, ``metrics_port``/``metrics_host``, ``service_name``).
            out_dir: the run's output directory (created if needed).
            resource_attributes: extra resource attributes (``service.name`` and
                ``service.version`` are set from the config and the package).

        Raises:
            OSError: the Prometheus port cannot be bound, or ``out_dir`` cannot be created.
        """
        out = Path(out_dir)
        if not config.enabled:
            return cls(
                config=config,
                out_dir=out,
                local=_Local(Telemetry.noop(), None),
                tracer_provider=None,
                meter_provider=None,
                otlp_processor=None,
                prometheus=None,
            )

        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from oafetch.telemetry import exporters, otel_env
        from oafetch.telemetry.metrics import metric_views
        from oafetch.telemetry.processors import StampingProcessor

        settings = otel_env.read(config)
        resource = exporters.resource(config, resource_attributes)
        prometheus, readers = exporters.metric_readers(config, settings)
        meter_provider = MeterProvider(
            metric_readers=readers,
            resource=resource,
            views=metric_views(),
            shutdown_on_exit=False,
        )
        # ALWAYS_ON: every span reaches the schema processor; OTEL_TRACES_SAMPLER governs export.
        tracer_provider = TracerProvider(
            resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False
        )
        if settings.sdk_disabled:
            exporters.keep_local_store(tracer_provider)
        telemetry = Telemetry.from_providers(tracer_provider, meter_provider)
        out.mkdir(parents=True, exist_ok=True)
        schema = _schema_processor(out, sqlite=config.sqlite, jsonl=config.jsonl)
        tracer_provider.add_span_processor(
            StampingProcessor(failure_duration=telemetry.instruments.failure_duration)
        )
        if schema is not None:
            tracer_provider.add_span_processor(schema)
        otlp_processor = exporters.span_processor(config, settings, meter_provider)
        if otlp_processor is not None:
            tracer_provider.add_span_processor(otlp_processor)
        runtime.activate(telemetry)
        session = cls(
            config=config,
            out_dir=out,
            local=_Local(telemetry, schema),
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            otlp_processor=otlp_processor,
            prometheus=prometheus,
        )
        session._local.register_atexit(session._atexit)
        return session

    # -- use ---------------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """False for a session started with ``enabled = false`` (everything a no-op)."""
        return self.telemetry.enabled

    @property
    def spans_dropped(self) -> int:
        """Spans the local store lost (0 in a healthy run)."""
        return self._local.spans_dropped

    def instrument(self, inner: httpx.BaseTransport) -> httpx.BaseTransport:
        """``inner`` wrapped in the CLIENT-span transport with oafetch's hooks (as is if off)."""
        if not self.enabled:
            return inner
        from oafetch.telemetry.client_spans import instrumented_transport

        return instrumented_transport(
            inner, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write every span that ended so far to the local store; push OTLP within the bound.

        Returns:
            True if the local store is complete (the OTLP push is best effort).
        """
        if not self.enabled or self._closed:
            return True
        deadline = time.monotonic() + timeout_s
        threads = []
        if self._otlp_processor is not None:
            from oafetch.telemetry.otlp import run_bounded

            threads.append(run_bounded(self._otlp_processor.force_flush, "otlp-flush"))
        ok = self._local.flush_local(max(0.0, deadline - time.monotonic()))
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return ok

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Drain the local store, stop exporting, release everything. Idempotent.

        Returns within about ``timeout_s`` even when the collector hangs (the OTLP threads are
        abandoned then); the local store is always drained first.

        Returns:
            True when everything, OTLP included, shut down cleanly within the bound.
        """
        if self._closed:
            return True
        self._closed = True
        self._local.unregister_atexit(self._atexit)
        self._local.deactivate()
        if not self.enabled:
            return True
        from oafetch.telemetry.otlp import join_all, run_bounded

        deadline = time.monotonic() + timeout_s
        threads: list[threading.Thread] = []
        if self._otlp_processor is not None:
            threads.append(run_bounded(self._otlp_processor.shutdown, "otlp-trace-shutdown"))
        meter_provider = self.meter_provider
        if meter_provider is not None:
            budget_ms = max(timeout_s, 0.1) * 1000

            def stop_metrics() -> None:
                meter_provider.shutdown(timeout_millis=budget_ms)

            if self._otlp_processor is None:
                # No OTLP reader (at most the local Prometheus one): nothing can hang, so no
                # thread to start and join.
                _run_logged(stop_metrics, "metric-shutdown")
            else:
                threads.append(run_bounded(stop_metrics, "otlp-metric-shutdown"))
        local_ok = True
        if self._local.schema is not None:
            self._local.schema.shutdown(
                timeout_s=max(deadline - time.monotonic(), _LOCAL_DRAIN_MIN_S)
            )
            local_ok = self._local.schema.spans_dropped == 0
        remote_ok = join_all(threads, deadline)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # every processor is already down: returns at once
        if self.prometheus is not None:
            self.prometheus.close(self.config.metrics_linger_s)
        return local_ok and remote_ok

    def _atexit(self) -> None:
        self.shutdown()

    def __enter__(self) -> TelemetrySession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


class Installed:
    """oafetch's processors inside an application's providers; see :func:`install`."""

    def __init__(self, local: _Local) -> None:
        self._local = local
        self.telemetry = local.telemetry
        self._closed = False

    @property
    def spans_dropped(self) -> int:
        """Spans the local store lost (0 in a healthy run)."""
        return self._local.spans_dropped

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until every span that ended so far is in the local store (or the timeout)."""
        return self._closed or self._local.flush_local(timeout_s)

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Drain and close oafetch's store; the application's providers stay as they are.

        Returns:
            True when nothing was lost.
        """
        if self._closed:
            return True
        self._closed = True
        self._local.unregister_atexit(self.shutdown)
        self._local.deactivate()
        if self._local.schema is None:
            return True
        self._local.schema.shutdown(timeout_s=timeout_s)
        return self._local.schema.spans_dropped == 0


def install(
    tracer_provider: Any,
    meter_provider: Any = None,
    *,
    out_dir: str | Path,
    sqlite: bool = True,
    jsonl: bool = True,
    activate: bool = True,
) -> Installed:
    """Add oafetch's stamping and schema processors to an application's SDK providers.

    Args:
        tracer_provider: the application's ``opentelemetry.sdk.trace.TracerProvider``.
        meter_provider: the application's ``MeterProvider`` (None: the global one). Build it
            with ``views=oafetch.telemetry.metric_views()``; Views cannot be added later.
        out_dir: where ``telemetry.sqlite`` and ``spans.jsonl`` go (created if needed).
        sqlite, jsonl: which local files to write.
        activate: make the returned handle the default of the ``emit_*`` helpers.

    Returns:
        An :class:`Installed` with ``telemetry`` (the handle to give the ``Downloader``),
        ``flush()``, ``shutdown()`` and ``spans_dropped``.

    Raises:
        TypeError: ``tracer_provider`` is not an SDK ``TracerProvider`` (an API-only or no-op
            provider runs no processors).
    """
    from opentelemetry.sdk.trace import TracerProvider

    from oafetch.telemetry.processors import StampingProcessor

    if not isinstance(tracer_provider, TracerProvider):
        raise TypeError(
            "oafetch.telemetry.install(): tracer_provider must be an "
            "opentelemetry.sdk.trace.TracerProvider "
            f"(got {type(tracer_provider).__name__}); processors cannot be added to it"
        )
    if getattr(tracer_provider, "_disabled", False):
        log.warning(
            "oafetch: the application's TracerProvider is disabled (OTEL_SDK_DISABLED=true): it "
            "records no span, so oafetch's local store stays empty; let oafetch start its own "
            "session (Downloader without telemetry=) to keep the store"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    telemetry = Telemetry.from_providers(tracer_provider, meter_provider)
    tracer_provider.add_span_processor(
        StampingProcessor(failure_duration=telemetry.instruments.failure_duration)
    )
    # The application's own spans pass through this provider too: store only oafetch's.
    schema = _schema_processor(out, sqlite=sqlite, jsonl=jsonl, only_oafetch=True)
    if schema is not None:
        tracer_provider.add_span_processor(schema)
    if activate:
        runtime.activate(telemetry)
    installed = Installed(_Local(telemetry, schema))
    installed._local.register_atexit(installed.shutdown)
    return installed
