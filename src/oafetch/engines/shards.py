"""What a shard of works is, and how any worker runs one.

:func:`run_shard` is all a worker does: build a :class:`~oafetch.Downloader` over a staging
directory of its own (``<out>/.cluster/<run_id>/<shard>-<attempt>``), hand it the cluster's rate
limiter and the driver's trace context, stream the shard's works through the usual scheduler and
fallback chain, publish the files to ``files_to`` when one is set (:mod:`oafetch.objectstore`),
and return what the driver needs to publish (:class:`ShardResult`). Nothing of a
shard reaches the output directory until the driver has the whole result, so a worker killed
mid-shard leaves only a staging directory to delete, never a partial file or row.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from oafetch import outdir
from oafetch.config import Config
from oafetch.http.ratelimit import RateLimiter
from oafetch.results import DownloadResult
from oafetch.works import InputLine

#: Directory (inside the output directory) holding the shards' staging directories.
STAGING_DIR = outdir.STAGING


@dataclass(frozen=True)
class Shard:
    """Works a worker runs together: ``index`` numbers it in the run (for names and order)."""

    index: int
    lines: tuple[InputLine, ...]


@dataclass
class ShardResult:
    """What a worker hands back: where its staging directory is and what it did there."""

    index: int
    staging: str  # the absolute staging directory (shared filesystem)
    node: str  # the host name of the worker that ran it
    results: list[DownloadResult] = field(default_factory=list)
    manifest_rows: list[dict[str, Any]] = field(default_factory=list)
    attempt_lines: list[str] = field(default_factory=list)
    spending: dict[str, dict[str, Any]] = field(default_factory=dict)
    unpublished: list[str] = field(default_factory=list)  # files_to puts that failed (why)


def make_shards(lines: Iterable[InputLine], size: int) -> Iterator[Shard]:
    """Cut the input into shards of ``size`` lines (the last one may be smaller)."""
    batch: list[InputLine] = []
    index = 0
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield Shard(index, tuple(batch))
            index += 1
            batch = []
    if batch:
        yield Shard(index, tuple(batch))


def staging_root(out_dir: Path, run_id: str) -> Path:
    """Where a run's shards stage their outputs."""
    return out_dir / STAGING_DIR / run_id


#: What :func:`run_shard_stages` yields once every work of its shard is under way.
ADMITTED = "admitted"


def run_shard(
    shard: Shard,
    config: Config,
    *,
    out_dir: str,
    run_id: str,
    limiter: RateLimiter | None,
    carrier: Mapping[str, str],
    dry_run: bool = False,
    node: str | None = None,
) -> ShardResult:
    """Run one shard in a fresh staging directory; return its outcomes and rows."""
    stages = run_shard_stages(
        shard,
        config,
        out_dir=out_dir,
        run_id=run_id,
        limiter=limiter,
        carrier=carrier,
        dry_run=dry_run,
        node=node,
    )
    return next(stage for stage in stages if isinstance(stage, ShardResult))


def run_shard_stages(
    shard: Shard,
    config: Config,
    *,
    out_dir: str,
    run_id: str,
    limiter: RateLimiter | None,
    carrier: Mapping[str, str],
    dry_run: bool = False,
    node: str | None = None,
) -> Iterator[str | ShardResult]:
    """:func:`run_shard` in two stages: yields :data:`ADMITTED` as soon as the shard's last
    work is under way, then its :class:`ShardResult`.

    Between the two, the shard only finishes its last works — mostly waiting at the busiest
    hosts — so an engine may start the next shard on the same worker then: its works cross
    the earlier tiers while these end, and a slow host's queue never runs dry at a shard's
    boundary (every shard would otherwise refill the whole fallback chain from empty).
    """
    from oafetch.downloader import Downloader
    from oafetch.resolvers.registry import build_resolvers

    attempt = secrets.token_hex(4)  # a retried shard never reuses a dead attempt's files
    staging = staging_root(Path(out_dir), run_id) / f"{shard.index:06d}-{attempt}"
    staging.mkdir(parents=True, exist_ok=False)
    # many shards run at once on a machine: none binds the live /metrics port (OTLP still exports)
    telemetry = config.telemetry.model_copy(update={"metrics_port": None, "serve_metrics": False})
    shard_config = config.model_copy(
        update={"out_dir": staging, "telemetry": telemetry, "files_to": None}
    )
    # built here, so the Downloader does not log the configuration's notes once per shard (the
    # driver said them once for the run)
    resolvers, _ = build_resolvers(shard_config)
    token = otel_context.attach(TraceContextTextMapPropagator().extract(dict(carrier)))
    try:
        with Downloader(
            shard_config, resume=False, run_id=run_id, limiter=limiter, resolvers=resolvers
        ) as dl:
            admission = _Admission(shard.lines)
            results = []
            said = False
            for result in dl.run(admission, dry_run=dry_run):
                results.append(result)
                if admission.done and not said:
                    said = True
                    yield ADMITTED
            if not said:
                yield ADMITTED
            spending = dl.spending()
    finally:
        otel_context.detach(token)
    rows = list(_json_lines(staging / "manifest.jsonl"))
    unpublished: list[str] = []
    if config.files_to and not dry_run:  # each worker puts its own files: no single link
        from oafetch.objectstore import ObjectStore

        store = ObjectStore(config.files_to, config.files_options)
        rows, unpublished = store.publish_rows(staging, rows)
    yield ShardResult(
        index=shard.index,
        staging=str(staging),
        node=node or f"{socket.gethostname()}:{os.getpid()}",
        results=results,
        manifest_rows=rows,
        attempt_lines=_attempt_lines(staging / "attempts.csv"),
        spending=spending,
        unpublished=unpublished,
    )


class _Admission:
    """The shard's input lines; ``done`` once the scheduler has taken the last one."""

    def __init__(self, lines: Iterable[InputLine]) -> None:
        self._lines = iter(lines)
        self.done = False

    def __iter__(self) -> Iterator[InputLine]:
        return self

    def __next__(self) -> InputLine:
        try:
            return next(self._lines)
        except StopIteration:
            self.done = True
            raise


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _attempt_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    return lines[1:]  # without the header
