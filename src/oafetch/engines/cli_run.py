"""``oafetch run --engine ray`` and ``--processes N``: the batch command on an engine."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from oafetch import batch
from oafetch.batch import (
    _drive,
    _lines,
    _summary_table,
    check_out_dir,
    check_resolvers,
    count_inputs,
    say_if_empty,
)
from oafetch.config import Config
from oafetch.engines.choose import ProcessChoice
from oafetch.engines.engine import DEFAULT_SHARD_SIZE
from oafetch.errors import ConfigError

log = logging.getLogger("oafetch")


def _say_notes(config: Config) -> None:
    """The configuration's notes, once for the run (its workers do not repeat them)."""
    for note in check_resolvers(config):
        log.warning("%s", note)


def run_on_ray(args: argparse.Namespace, config: Config) -> int:
    """Run the batch the arguments describe on Ray; return the exit code."""
    try:
        from oafetch.engines.ray_engine import RayEngine
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray: Ray is not installed ({exc}); pip install 'oafetch[ray]'"
        ) from None
    if args.list_only:
        raise ConfigError("--engine ray: --list-only runs on the local engine only")
    _say_notes(config)
    lines = _lines(args, config)
    check_out_dir(Path(config.out_dir))
    started = time.time()
    engine = RayEngine(
        config,
        address=args.address,
        resume=args.resume,
        shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
    )
    return _drive_engine(args, config, engine, lines, started, total=count_inputs(args))


def run_on_processes(
    args: argparse.Namespace, config: Config, choice: ProcessChoice, *, total: int | None = None
) -> int:
    """Run the batch the arguments describe on ``choice.processes`` local processes."""
    from oafetch.engines.process_engine import ProcessEngine

    if args.list_only:
        raise ConfigError("--processes: --list-only runs in one process (--processes 1)")
    _say_notes(config)
    lines = _lines(args, config)
    check_out_dir(Path(config.out_dir))
    if config.processes == "auto" and not getattr(args, "quiet", False):
        print(
            f"oafetch: {choice.processes} worker processes ({choice.why}; --processes 1 runs"
            " every work in this process)",
            file=sys.stderr,
        )
    started = time.time()
    shard_size = getattr(args, "shard_size", None) or DEFAULT_SHARD_SIZE
    engine = ProcessEngine(
        config, processes=choice.processes, resume=args.resume, shard_size=shard_size
    )
    # Ctrl-C / SIGTERM: no new shard starts, the running ones finish and are published
    batch._active.append(engine.cancel)
    try:
        if batch._stop_requested.is_set():
            engine.cancel.set()
        return _drive_engine(args, config, engine, lines, started, total=total)
    finally:
        batch._active.remove(engine.cancel)


def _drive_engine(
    args: argparse.Namespace,
    config: Config,
    engine: Any,
    lines: Any,
    started: float,
    *,
    total: int | None = None,
) -> int:
    if batch.metrics_endpoint(config) is not None:
        print(
            "oafetch: the live /metrics endpoint (--metrics-port, OTEL_METRICS_EXPORTER="
            "prometheus) is not served by --engine ray or --processes N (each worker runs many "
            "shards); their metrics go to the OTLP endpoint (--otlp-endpoint), or run with "
            "--processes 1",
            file=sys.stderr,
        )
    interrupted = False
    try:
        results = engine.run(lines, dry_run=bool(args.dry_run), max_works=args.max)
        quiet = getattr(args, "quiet", False)
        _drive(results, engine.stats, quiet=quiet, total=total)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.time() - started
        engine.close()
    stats = engine.stats
    _summary_table(stats, elapsed, engine.collector.spending)
    print(
        f"outputs in {config.out_dir}/ (manifest.jsonl, attempts.csv, summary.json"
        + (", telemetry.sqlite, spans.jsonl)" if config.telemetry.enabled else ")")
    )
    if interrupted or getattr(engine, "interrupted", False):
        print("interrupted: run `oafetch run` again with the same --out to resume", file=sys.stderr)
        return 130
    say_if_empty(args, stats)
    return 0
