"""``oafetch run --engine ray`` and ``--processes N``: the batch command on an engine."""

from __future__ import annotations

import argparse
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
)
from oafetch.config import Config
from oafetch.engines.engine import DEFAULT_SHARD_SIZE
from oafetch.errors import ConfigError


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
    check_resolvers(config)
    lines = _lines(args, config)
    check_out_dir(Path(config.out_dir))
    started = time.time()
    engine = RayEngine(
        config,
        address=args.address,
        resume=args.resume,
        shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
    )
    return _drive_engine(args, config, engine, lines, started)


def run_on_processes(args: argparse.Namespace, config: Config) -> int:
    """Run the batch the arguments describe on ``config.processes`` local processes."""
    from oafetch.engines.process_engine import ProcessEngine

    if args.list_only:
        raise ConfigError("--processes: --list-only runs in one process (--processes 1)")
    check_resolvers(config)
    lines = _lines(args, config)
    check_out_dir(Path(config.out_dir))
    started = time.time()
    shard_size = getattr(args, "shard_size", None) or DEFAULT_SHARD_SIZE
    engine = ProcessEngine(
        config, processes=config.processes, resume=args.resume, shard_size=shard_size
    )
    # Ctrl-C / SIGTERM: no new shard starts, the running ones finish and are published
    batch._active.append(engine.cancel)
    try:
        if batch._stop_requested.is_set():
            engine.cancel.set()
        return _drive_engine(args, config, engine, lines, started)
    finally:
        batch._active.remove(engine.cancel)


def _drive_engine(
    args: argparse.Namespace, config: Config, engine: Any, lines: Any, started: float
) -> int:
    if config.telemetry.metrics_port is not None:
        print(
            "oafetch: --metrics-port is not served by --engine ray or --processes N (each worker "
            "runs many shards); their metrics go to the OTLP endpoint (--otlp-endpoint)",
            file=sys.stderr,
        )
    interrupted = False
    try:
        results = engine.run(lines, dry_run=bool(args.dry_run), max_works=args.max)
        _drive(results, engine.stats, quiet=getattr(args, "quiet", False), total=count_inputs(args))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.time() - started
        engine.close()
    stats = engine.stats
    _summary_table(stats, elapsed, engine.collector.spending)
    print(f"outputs in {config.out_dir}/ (manifest.jsonl, attempts.csv, summary.json)")
    if interrupted or getattr(engine, "interrupted", False):
        print("interrupted: run `oafetch run` again with the same --out to resume", file=sys.stderr)
        return 130
    return 0
