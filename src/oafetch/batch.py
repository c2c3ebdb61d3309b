"""``oafetch run``: a batch from a file (or stdin) with progress, summary and clean Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oafetch.config import Config
from oafetch.engines.choose import ProcessChoice, choose_processes, machine_cores
from oafetch.errors import ConfigError, InputError
from oafetch.runstats import RunStats
from oafetch.works import InputLine, detect_format, read_input

log = logging.getLogger("oafetch")

_active: list[threading.Event] = []

#: Exit code of a batch stopped because its outputs cannot be written (sysexits' EX_IOERR).
EXIT_DISK = 74


_stop_requested = threading.Event()


def reset_stop() -> None:
    """Forget an earlier stop request (a new command starts in this process)."""
    _stop_requested.clear()


def request_stop() -> None:
    """Ask every running batch to stop admitting works and abandon in-flight downloads.

    A batch that starts afterwards in this process (the signal came while it was opening its
    output directory) stops at once too. A live metrics endpoint does not wait for a last scrape.
    """
    _stop_requested.set()
    for event in list(_active):
        event.set()
    # Only if loaded (no endpoint otherwise): this runs in a signal handler, no import here.
    metrics = sys.modules.get("oafetch.telemetry.metrics")
    if metrics is not None:
        metrics.stop_lingering()


def _lines(args: argparse.Namespace, config: Config) -> Iterator[InputLine]:
    if getattr(args, "openalex_filter", None):
        from oafetch.resolvers.openalex_query import openalex_works

        return openalex_works(config, args.openalex_filter)
    if not args.input:
        raise InputError("no input: give a file of identifiers, - for stdin, or --openalex-filter")
    return read_input(args.input, fmt=args.format, column=args.column)


def _summary_table(
    stats: RunStats, elapsed: float, spending: dict[str, dict[str, Any]] | None = None
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    data = stats.as_dict()
    table = Table(title=f"oafetch run {stats.run_id}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for outcome, count in sorted(data["outcomes"].items()):
        table.add_row(f"outcome {outcome}", str(count))
    for reason, count in sorted(data["reasons"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"  reason {reason}", str(count))
    for resolver, count in sorted(data["success_by_resolver"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"  stored via {resolver}", str(count))
    identity = data["identity"]
    verdicts = ", ".join(
        f"{identity[k]} {k}" for k in ("match", "unknown", "off") if identity.get(k)
    )
    if verdicts or identity["quarantined"]:
        table.add_row("identity of stored PDFs", verdicts or "-")
        table.add_row("  quarantined (not the work)", str(identity["quarantined"]))
    for version, licenses in data["stored_by_version"].items():
        table.add_row(f"stored {version}", str(sum(licenses.values())))
        for license, count in licenses.items():
            table.add_row(f"  licence {license}", str(count))
    if data["retracted"]:
        table.add_row("retracted (a source says)", str(data["retracted"]))
    table.add_row("yield", f"{data['yield_pct']:.1f} %")
    table.add_row("bytes stored", f"{data['bytes_stored'] / 1e6:.1f} MB")
    table.add_row("time", f"{elapsed:.1f} s")
    for source, spent in sorted((spending or {}).items()):
        refused = f", {spent['refused']} refused by the cap" if spent.get("refused") else ""
        paid = f"${spent['usd']:.2f} ({spent['calls']} calls{refused})"
        table.add_row(f"spent via {source}", paid)
    console.print(table)


def check_resolvers(config: Config) -> list[str]:
    """Validate the ``[resolvers.*]`` tables before anything is created on disk; return the
    notes about sources that will not be asked (a missing key, say).

    Raises:
        ConfigError: an unknown source or an unknown key (with a suggestion).
    """
    from oafetch.resolvers.registry import build_resolvers

    return build_resolvers(config)[1]


def check_out_dir(path: Path) -> None:
    """Fail before a run starts if the output directory cannot be created or written.

    Raises:
        ConfigError: the path is a file, lies under a file, or is not writable.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"out_dir: {path} exists and is not a directory") from None
    except OSError as exc:
        raise ConfigError(
            f"out_dir: cannot create {path}: {exc.strerror or exc}"
            + (" (a parent is a file)" if isinstance(exc, NotADirectoryError) else "")
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"out_dir: {path} is not writable")


def run_batch(args: argparse.Namespace, config: Config) -> int:
    """Run the batch the arguments describe; return the exit code."""
    from oafetch.downloader import Downloader

    if getattr(args, "engine", "local") == "ray":
        from oafetch.engines.cli_run import run_on_ray

        return run_on_ray(args, config)
    total = count_inputs(args)
    choice = process_choice(args, config, total)
    publish = bool(config.files_to) and not getattr(args, "list_only", False)
    if choice.processes > 1 or publish:  # files_to: the workers publish (one process or N)
        from oafetch.engines.cli_run import run_on_processes

        return run_on_processes(args, config, choice, total=total)
    check_resolvers(config)
    lines = _lines(args, config)
    check_out_dir(Path(config.out_dir))
    started = time.time()
    dry = bool(args.dry_run)
    with Downloader(config, resume=args.resume) as dl:
        _active.append(dl.cancel)
        if _stop_requested.is_set():  # stopped before the batch could be told
            dl.cancel.set()
        try:
            results = dl.run(lines, dry_run=dry, max_works=args.max, list_only=args.list_only)
            _drive(results, dl.stats, quiet=getattr(args, "quiet", False), total=total)
        finally:
            _active.remove(dl.cancel)
            # The run's time, not the live metrics endpoint's wait for a last scrape on close.
            elapsed = time.time() - started
        stats = dl.stats
        spending = dl.spending()
        interrupted = dl.cancel.is_set()
        disk_error = dl.disk_error
    _summary_table(stats, elapsed, spending)
    print(
        f"outputs in {config.out_dir}/ (manifest.jsonl, attempts.csv, summary.json"
        + (", telemetry.sqlite, spans.jsonl)" if config.telemetry.enabled else ")")
    )
    if disk_error is not None:
        print(
            f"oafetch: stopped: {disk_error}; free space (or fix the output directory) and run "
            "`oafetch run` again with the same --out to resume",
            file=sys.stderr,
        )
        return EXIT_DISK
    if interrupted:
        print("interrupted: run `oafetch run` again with the same --out to resume", file=sys.stderr)
        return 130
    say_if_empty(args, stats)
    return 0


def say_if_empty(args: argparse.Namespace, stats: RunStats) -> None:
    """Tell the user when the input held no work at all."""
    if stats.done == 0:
        source = args.input or f"--openalex-filter {args.openalex_filter}"
        print(f"oafetch: no identifiers in {source}: nothing to do", file=sys.stderr)


def process_choice(args: argparse.Namespace, config: Config, total: int | None) -> ProcessChoice:
    """How many worker processes this ``oafetch run`` uses (``total``: works in the input)."""
    return choose_processes(
        config.processes,
        cores=machine_cores(),
        works=total,
        list_only=bool(getattr(args, "list_only", False)),
        metrics_port=metrics_endpoint(config),
    )


def metrics_endpoint(config: Config) -> int | None:
    """The port of the live ``/metrics`` endpoint the run is asked to serve (``--metrics-port``
    or ``OTEL_METRICS_EXPORTER=prometheus``), if any."""
    from oafetch.telemetry import otel_env

    if not config.telemetry.enabled:
        return None
    return otel_env.read(config.telemetry).prometheus_port


def count_inputs(args: argparse.Namespace) -> int | None:
    """How many works the input holds (for the progress bar), when it is a file; else None."""
    path = getattr(args, "input", None)
    if not path or path == "-" or getattr(args, "openalex_filter", None):
        return None
    try:
        with open(path, "rb") as fh:
            lines = sum(1 for line in fh if line.strip() and not line.lstrip().startswith(b"#"))
    except OSError:
        return None
    if (args.format or detect_format(path)) == "csv":
        lines -= 1  # the header
    return min(lines, args.max) if getattr(args, "max", None) else lines


def _drive(
    results: Iterator[Any], stats: RunStats, *, quiet: bool, total: int | None = None
) -> None:
    if sys.stderr.isatty() and not quiet:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("[bold]oafetch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[rate]:.1f}/s yield {task.fields[yield_]:.0f}%"
                " waiting {task.fields[parked]} on {task.fields[hosts]} hosts"
            ),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task("works", total=total, rate=0.0, yield_=0.0, parked=0, hosts=0)
            start = time.monotonic()
            for _ in results:
                elapsed = max(1e-6, time.monotonic() - start)
                progress.update(
                    task,
                    completed=stats.done,
                    rate=stats.done / elapsed,
                    yield_=stats.yield_pct,
                    parked=stats.parked,
                    hosts=stats.hosts_waiting,
                )
        return
    last = time.monotonic()
    for _ in results:
        now = time.monotonic()
        if now - last >= 5 and not quiet:
            last = now
            log.info(
                "progress: %d%s works done, yield %.1f%%, %d waiting on %d hosts",
                stats.done,
                f"/{total}" if total else "",
                stats.yield_pct,
                stats.parked,
                stats.hosts_waiting,
            )
