"""The CLIENT span of each of oafetch's own requests, on oafetch's providers, whatever the app does.

oafetch's clients are instrumented per client with opentelemetry-instrumentation-httpx's
``SyncOpenTelemetryTransport`` (:func:`instrumented_transport`), placed just above the socket
transport. Three things keep that span oafetch's own without touching the application's:

- **Stable HTTP semantic conventions, for these spans only.** The instrumentation picks its
  conventions once per process from ``OTEL_SEMCONV_STABILITY_OPT_IN``; oafetch never sets that
  variable (the application's own httpx spans keep the names it chose). The transport built here
  is switched to the stable names per instance, its ``http.client.request.duration`` histogram
  is created on oafetch's meter (so :func:`~oafetch.telemetry.metrics.metric_views` can select
  it by meter name and never reshapes the application's), and its tracer carries the stable
  schema URL.
- **One CLIENT span per request.** An application that instruments httpx globally
  (``HTTPXClientInstrumentor().instrument()``) wraps every ``HTTPTransport.handle_request``; the
  request passes below oafetch's span with HTTP instrumentation suppressed, so that wrapper
  steps aside instead of nesting a second span.
- **Whose span it is.** The request runs under an ``own request`` context entry; the stamping
  processor sees it at span start (:func:`is_own_request`), so it stamps run/work identity onto
  oafetch's CLIENT spans and never onto a CLIENT span of the application's clients.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry.context import Context

from oafetch._version import __version__
from oafetch.telemetry import names

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

log = logging.getLogger(__name__)

#: The context entry set while one of oafetch's clients sends a request.
OWN_REQUEST = "oafetch.own_request"
#: The semantic-conventions schema of the stable HTTP names the CLIENT spans carry.
HTTP_SCHEMA_URL = names.SCHEMA_URL


def is_own_request(ctx: Context | None = None) -> bool:
    """True inside a request sent by one of oafetch's clients (``ctx``: default current)."""
    return bool(otel_context.get_value(OWN_REQUEST, ctx))


class _OwnRequest(httpx.BaseTransport):
    """Marks the context as oafetch's request, then sends through the instrumented transport."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        token = otel_context.attach(otel_context.set_value(OWN_REQUEST, True))
        try:
            return self._inner.handle_request(request)
        finally:
            otel_context.detach(token)

    def close(self) -> None:
        self._inner.close()


class _BelowClientSpan(httpx.BaseTransport):
    """Sends with HTTP instrumentation suppressed: an application's global httpx
    instrumentation must not add a second CLIENT span below oafetch's."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from opentelemetry.instrumentation.utils import suppress_http_instrumentation

        with suppress_http_instrumentation():
            return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def _use_stable_names(
    transport: Any, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> bool:
    """Switch one instrumentation transport to stable names, oafetch's meter and schema URL.

    Returns:
        False when this version of the instrumentation is laid out otherwise (then the transport
        keeps the process-wide choice, and the mapping reads the old names too).
    """
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.instrumentation._semconv import _StabilityMode
        from opentelemetry.instrumentation.httpx import __name__ as instrumentation_name
        from opentelemetry.instrumentation.httpx.version import __version__ as instr_version
    except ImportError:  # pragma: no cover - depends on the instrumentation's layout
        return False
    needed = ("_sem_conv_opt_in_mode", "_tracer", "_duration_histogram_old")
    if not all(hasattr(transport, attr) for attr in needed):  # pragma: no cover
        return False
    from oafetch.telemetry.metrics import DURATION_BUCKETS_S

    transport._sem_conv_opt_in_mode = _StabilityMode.HTTP
    transport._tracer = trace.get_tracer(
        instrumentation_name,
        instr_version,
        tracer_provider=tracer_provider,
        schema_url=HTTP_SCHEMA_URL,
    )
    meter = metrics.get_meter(
        names.INSTRUMENTATION_SCOPE, __version__, meter_provider, schema_url=HTTP_SCHEMA_URL
    )
    transport._duration_histogram_old = None
    transport._duration_histogram_new = meter.create_histogram(
        names.METRIC_HTTP_DURATION,
        unit="s",
        description="Duration of HTTP client requests.",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
    )
    return True


_warned: list[bool] = []


def instrumented_transport(
    inner: httpx.BaseTransport,
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
) -> httpx.BaseTransport:
    """``inner`` under oafetch's CLIENT span: stable names, oafetch's providers, one span.

    Place the result directly above the socket-level transport.
    """
    from opentelemetry.instrumentation.httpx import SyncOpenTelemetryTransport

    from oafetch.telemetry.httpx_hooks import request_hook, response_hook

    transport = SyncOpenTelemetryTransport(
        _BelowClientSpan(inner),
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        request_hook=request_hook,
        response_hook=response_hook,
    )
    if not _use_stable_names(transport, tracer_provider, meter_provider) and not _warned:
        _warned.append(True)
        log.warning(
            "oafetch: this opentelemetry-instrumentation-httpx cannot be given stable HTTP "
            "names per client; CLIENT spans use the process-wide choice"
        )
    return _OwnRequest(transport)
