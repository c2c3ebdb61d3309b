"""oafetch's telemetry: spans, events and metrics, and where they are written.

Importing this package costs only the OpenTelemetry API: the hot path needs nothing more
(:mod:`~oafetch.telemetry.names`, :mod:`~oafetch.telemetry.context`,
:mod:`~oafetch.telemetry.emit`, :mod:`~oafetch.telemetry.runtime`). The SDK, processors and
exporters are imported only when :class:`TelemetrySession` or :func:`install` is used.

- :class:`TelemetrySession` — oafetch's own providers for a run (what the CLI and ``Downloader``
  start when the application gives none).
- :func:`install` — add oafetch's processors to an application's SDK providers.
- :func:`metric_views` — the Views an application's ``MeterProvider`` needs for oafetch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.view import View

    from oafetch.telemetry.setup import Installed, TelemetrySession

__all__ = ["Installed", "TelemetrySession", "install", "metric_views"]


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

    See :func:`oafetch.telemetry.setup.install` for the arguments.
    """
    from oafetch.telemetry import setup

    return setup.install(
        tracer_provider,
        meter_provider,
        out_dir=out_dir,
        sqlite=sqlite,
        jsonl=jsonl,
        activate=activate,
    )


def metric_views() -> list[View]:
    """The Views (explicit buckets, low-cardinality attributes) to give an application's
    ``MeterProvider(views=…)`` when oafetch runs inside it."""
    from oafetch.telemetry import metrics

    return metrics.metric_views()


def __getattr__(name: str) -> Any:
    # PEP 562: the SDK-backed classes are imported on first use, not with the package.
    if name in ("TelemetrySession", "Installed"):
        from oafetch.telemetry import setup

        return getattr(setup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
