"""oafetch inside an application that owns its OpenTelemetry SDK (runnable, offline).

    python examples/embed_in_app.py [OUT_DIR]

The application builds its own providers (not global), instruments httpx for its own clients,
and hands its providers to oafetch. oafetch adds its processors, writes its local store under
OUT_DIR, and sends its spans and metrics through the application's exporters; it changes no
environment variable and no global provider. Works come from the sandbox web, so nothing leaves
the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import oafetch
import oafetch.telemetry
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox


def main(out: Path) -> None:
    # The application's SDK: its exporters (in memory here; OTLP in real life), its Views.
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], views=oafetch.telemetry.metric_views())
    HTTPXClientInstrumentor().instrument()  # the app's own httpx clients: oafetch's stay single

    installed = oafetch.telemetry.install(tracer_provider, meter_provider, out_dir=out)
    app_tracer = tracer_provider.get_tracer("my.app")
    with Sandbox(corpus=Corpus(seed=1, n_works=5)) as sandbox:
        config = demo_config(sandbox, out, cache={"enabled": False})
        with oafetch.Downloader(config, telemetry=installed.telemetry) as dl:
            with app_tracer.start_as_current_span("my.app.ingest"):
                first = dl.fetch(sandbox.works[0].identifier)  # a child of my.app.ingest
            rest = list(dl.run(w.identifier for w in sandbox.works[1:]))  # a trace per work
    installed.shutdown()  # drains oafetch's store; the app's providers keep running

    spans = exporter.get_finished_spans()
    works = [s for s in spans if s.name == "oafetch.work"]
    print(f"first work: {first.outcome} (trace {first.trace_id})")
    traces = {s.context.trace_id for s in works}
    print(f"{len(rest) + 1} works: {len(works)} work spans in {len(traces)} traces")
    print(f"the app's exporter got {len(spans)} spans; oafetch's store: {out / 'telemetry.sqlite'}")
    tracer_provider.shutdown()
    meter_provider.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "embed-out"))
