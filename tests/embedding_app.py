"""An application that owns its OpenTelemetry SDK and embeds oafetch (run in a child process).

    python embedding_app.py CASE BASE_URL OUT_DIR

BASE_URL serves ``/p0.pdf`` … ``/p5.pdf`` and ``/app`` (the application's own request). Prints
one JSON object of what the application's exporter, reader and environment saw. Cases:

- ``nonglobal``: providers not set globally, ``install(tp, mp)``.
- ``app_httpx``: global providers and ``HTTPXClientInstrumentor().instrument()`` before oafetch.
- ``app_threads``: an application thread starts spans on the same provider during the batch.
- ``env``: oafetch imported and run with its own session; the environment before and after.
- ``fetch_in_span``: ``Downloader.fetch()`` inside an application span.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

ENV_BEFORE = dict(os.environ)

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402

N_WORKS = 6


def _config(out: Path, telemetry: dict[str, Any]) -> Any:
    from oafetch.config import Config

    return Config(
        out_dir=out,
        mailto="tester@oafetch.test",
        telemetry=telemetry,
        politeness={"enabled": False},
        download={"fsync": False, "min_pdf_bytes": 100},
        cache={"enabled": False},
        resolvers={name: {"enabled": False} for name in _sources()},
    )


def _sources() -> list[str]:
    from oafetch.resolvers.sources import ALL

    return [cls.name for cls in ALL]


def _client_spans(spans: list[ReadableSpan], base: str) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is SpanKind.CLIENT]


def _span_summary(spans: list[ReadableSpan]) -> dict[str, Any]:
    by_id = {s.context.span_id: s for s in spans}
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    nested = [
        s
        for s in clients
        if s.parent is not None
        and s.parent.span_id in by_id
        and by_id[s.parent.span_id].kind is SpanKind.CLIENT
    ]
    own = [s for s in clients if "oafetch.run_id" in (s.attributes or {})]
    app = [s for s in spans if s.name.startswith("app.")]
    return {
        "client_spans": len(clients),
        "oafetch_client_spans": len(own),
        "nested_client_spans": len(nested),
        "stable_names": all("url.full" in (s.attributes or {}) for s in own),
        "app_spans": len(app),
        "app_spans_stamped": sum(
            any(k.startswith("oafetch.") for k in (s.attributes or {})) for s in app
        ),
        "app_client_attrs": sorted(
            {k for s in clients if s not in own for k in (s.attributes or {})}
        ),
    }


def _metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    found: dict[str, Any] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = list(metric.data.data_points)
                found[f"{sm.scope.name}:{metric.name}"] = {
                    "count": sum(getattr(p, "count", 0) for p in points),
                    "bounds": [list(getattr(p, "explicit_bounds", []) or []) for p in points],
                    "attrs": sorted({k for p in points for k in (p.attributes or {})}),
                }
    return found


def _app_providers(global_: bool) -> tuple[TracerProvider, MeterProvider, Any, Any]:
    from oafetch.telemetry import metric_views

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], views=metric_views(), shutdown_on_exit=False)
    if global_:
        from opentelemetry import metrics

        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(meters)
    return provider, meters, exporter, reader


def _urls(base: str) -> list[str]:
    return [f"{base}/p{i}.pdf" for i in range(N_WORKS)]


def _run_installed(case: str, base: str, out: Path) -> dict[str, Any]:
    import httpx

    import oafetch
    from oafetch.telemetry import install

    provider, meters, exporter, reader = _app_providers(global_=case != "nonglobal")
    if case == "app_httpx":
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument()
    stop = threading.Event()
    app_thread = None
    if case == "app_threads":
        tracer = provider.get_tracer("app")

        def busy() -> None:
            while not stop.is_set():
                with tracer.start_as_current_span("app.tick"):
                    stop.wait(0.002)

        app_thread = threading.Thread(target=busy)
        app_thread.start()
    installed = install(provider, meters, out_dir=out)
    extra: dict[str, Any] = {}
    with oafetch.Downloader(_config(out, {"enabled": True}), telemetry=installed.telemetry) as dl:
        if case == "fetch_in_span":
            with provider.get_tracer("app").start_as_current_span("app.request") as app_span:
                result = dl.fetch(_urls(base)[0])
            ctx = app_span.get_span_context()
            extra["app_span"] = [format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")]
            extra["result_trace_id"] = result.trace_id
            run_ctx = dl._run_span.get_span_context()
            extra["run_span"] = [format(run_ctx.trace_id, "032x"), format(run_ctx.span_id, "016x")]
        else:
            results = list(dl.run(_urls(base)))
            extra["ok"] = sum(r.ok for r in results)
    if case == "app_httpx":
        with provider.get_tracer("app").start_as_current_span("app.call"):
            httpx.get(f"{base}/app")
    stop.set()
    if app_thread is not None:
        app_thread.join()
    assert installed.shutdown()
    spans = list(exporter.get_finished_spans())
    summary = _span_summary(spans)
    works = [s for s in spans if s.name == "oafetch.work"]
    summary["work_spans"] = [
        {
            "trace_id": format(s.context.trace_id, "032x"),
            "parent": format(s.parent.span_id, "016x") if s.parent else None,
            "links": [
                [format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")]
                for link in s.links
            ],
        }
        for s in works
    ]
    return {**summary, **extra, "metrics": _metrics(reader)}


def _run_env(base: str, out: Path) -> dict[str, Any]:
    import oafetch

    after_import = dict(os.environ)
    with oafetch.Downloader(_config(out, {"enabled": True})) as dl:
        results = list(dl.run(_urls(base)))
    global_provider = type(trace.get_tracer_provider()).__name__
    # The application's own instrumentation, set up after oafetch ran: its own choice of names.
    import httpx
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    provider, _meters, exporter, _reader = _app_providers(global_=True)
    HTTPXClientInstrumentor().instrument()
    with provider.get_tracer("app").start_as_current_span("app.call"):
        httpx.get(f"{base}/app")
    return {
        "ok": sum(r.ok for r in results),
        "changed_by_import": sorted(k for k in after_import if ENV_BEFORE.get(k) != after_import[k])
        + sorted(k for k in ENV_BEFORE if k not in after_import),
        "changed_by_run": sorted(k for k in os.environ if ENV_BEFORE.get(k) != os.environ[k]),
        "global_tracer_provider": global_provider,
        **_span_summary(list(exporter.get_finished_spans())),
    }


def main() -> None:
    case, base, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    found = _run_env(base, out) if case == "env" else _run_installed(case, base, out)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
