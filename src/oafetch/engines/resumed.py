"""The telemetry of the works a cluster run finds already stored, written by the driver.

A local run records each work an earlier run stored as an outcome of this run (a work span with
reason ``resumed``, hence a ``downloads`` row; :func:`oafetch.outcomes.record_resumed`). In a
cluster run those works never reach a worker: the driver skips them before sharding. So the
driver records them itself, the same way, into one more telemetry shard of the run
(``telemetry-shards/<run>-resumed.sqlite``), which the run's merge folds in with the others:
``run_summary`` and ``downloads`` then count what ``summary.json`` counts, as after a local
resume. Works are recorded as they are found (streamed, nothing kept per work); the store
exists only when the run resumed something.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from oafetch import outcomes
from oafetch._version import __version__
from oafetch.config import Config
from oafetch.results import DownloadResult
from oafetch.telemetry import names, traces
from oafetch.telemetry.context import identity
from oafetch.telemetry.setup import TelemetrySession
from oafetch.works import Work

log = logging.getLogger("oafetch")

#: The shard name the resumed works' store gets (``<run>-resumed.sqlite``).
SHARD_NAME = "resumed"


class ResumedRecorder:
    """Records resumed works of ``run_id`` into ``staging`` (started at the first work).

    Args:
        config: the run's configuration (its telemetry settings; no metrics endpoint here:
            the workers serve the run's metrics).
        run_id: the run the works are outcomes of.
        staging: a directory of the driver's own, under the run's staging root.
        carrier: the driver's trace context (W3C headers), the parent of the run span.
    """

    def __init__(
        self, config: Config, run_id: str, staging: Path, carrier: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.staging = staging
        self.carrier = dict(carrier or {})
        self.recorded = 0
        self._session: TelemetrySession | None = None
        self._run_span: Span | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.config.telemetry.enabled and not self._failed

    def record(self, result: DownloadResult, work: Work, relpath: str | None) -> None:
        """Record one resumed work (telemetry never fails the run: a failure is logged once)."""
        if not self.enabled:
            return
        try:
            run_span = self._start()
            parent, links = traces.work_parent(run_span)
            token = otel_context.attach(parent)
            try:
                with identity(
                    run_id=self.run_id, work_id=work.work_id, artifact_id=work.artifact_id
                ):
                    assert self._session is not None
                    outcomes.record_resumed(self._session.telemetry, result, work, relpath, links)
            finally:
                otel_context.detach(token)
            self.recorded += 1
        except Exception as exc:
            self._failed = True
            log.warning("resumed works not recorded in telemetry: %s", exc)

    def _start(self) -> Span:
        if self._run_span is not None:
            return self._run_span
        self.staging.mkdir(parents=True, exist_ok=True)
        telemetry = self.config.telemetry.model_copy(update={"metrics_port": None})
        self._session = TelemetrySession.start(telemetry, self.staging)
        parent = TraceContextTextMapPropagator().extract(self.carrier)
        token = otel_context.attach(parent)
        try:
            self._run_span = self._session.telemetry.tracer.start_span(
                names.SPAN_RUN,
                context=traces.run_parent(),
                attributes={
                    names.RUN_ID: self.run_id,
                    names.CONFIG_HASH: self.config.config_hash,
                    names.VERSION: __version__,
                },
            )
        finally:
            otel_context.detach(token)
        return self._run_span

    def close(self, shards_dir: Path) -> Path | None:
        """End the run span, flush, and move the store into ``shards_dir``; its new path
        (``spans.jsonl`` stays in :attr:`staging` for the collector to append)."""
        if self._session is None or self._run_span is None:
            return None
        try:
            self._run_span.set_attribute(names.OUTCOME, "done")
            self._run_span.end()
            self._session.flush()
        except Exception as exc:
            self._failed = True
            log.warning("resumed works not recorded in telemetry: %s", exc)
        finally:
            self._session.shutdown()
        store = self.staging / "telemetry.sqlite"
        if self._failed or not store.exists():
            return None
        shards_dir.mkdir(exist_ok=True)
        target = shards_dir / f"{self.run_id}-{SHARD_NAME}.sqlite"
        os.replace(store, target)
        return target
