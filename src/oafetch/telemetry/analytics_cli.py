"""The ``oafetch telemetry`` command group: ``slo``, ``sources``, ``query``, ``export``, ``serve``.

``register(subparsers)`` adds the group to the main ``oafetch`` parser; ``main(argv)`` is the same
group as a standalone parser (tests call it in-process). Every subcommand stores its handler as
``args.func``; a handler takes the parsed arguments and returns the exit status: 0 success (for
``slo``: every SLI met), 1 an SLO missed, 2 a usage error (missing store, unknown run, bad SQL,
bad targets file …) with a message on stderr that says what and what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oafetch.cligroup import run_group
from oafetch.telemetry import parquet, query, serve, slo, store
from oafetch.telemetry.store import StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PROG = "oafetch telemetry"
DEFAULT_MAX_ROWS = 1000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``telemetry`` command group to the ``oafetch`` parser's subcommands."""
    parser = subparsers.add_parser(
        "telemetry",
        help="SLOs, SQL, Parquet export and a Prometheus endpoint over a run's telemetry store",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_commands(parser)


def main(argv: list[str] | None = None) -> int:
    """Run ``oafetch telemetry …`` with ``argv`` (no ``telemetry`` word); return the exit code."""
    return run_group(_PROG, _add_commands, argv)


def _add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="telemetry_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "slo", help="every SLI of a run against its target (exit 1 if any fails)"
    )
    _db_argument(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="ID", help="the run to judge (default: the latest)")
    which.add_argument("--latest", action="store_true", help="judge the latest run (the default)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--targets",
        type=Path,
        metavar="FILE",
        help="TOML file whose [slo] table overrides the default targets (e.g. oafetch.toml)",
    )
    p.add_argument(
        "--verify-files",
        action="store_true",
        help="re-check every stored file: exists, size and sha256 (reads every byte)",
    )
    p.set_defaults(func=cmd_slo)

    p = commands.add_parser("query", help="run one read-only SQL statement (DuckDB) on the store")
    _db_argument(p)
    p.add_argument(
        "sql", metavar="SQL", help='e.g. "SELECT outcome, count(*) FROM downloads GROUP BY 1"'
    )
    p.add_argument("--format", choices=query.FORMATS, default="table", help="output format")
    p.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"rows shown by --format table (default {DEFAULT_MAX_ROWS}; csv and json print all)",
    )
    p.set_defaults(func=cmd_query)

    p = commands.add_parser(
        "sources",
        help="sources x key: success rate, median time, requests per success, learned order",
    )
    _db_argument(p)
    p.add_argument("--key", default="", help="only keys containing this (e.g. 10.1371)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_sources)

    p = commands.add_parser("export", help="write every table to Parquet (ZSTD)")
    _db_argument(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--run", metavar="ID", help="export only this run, to DIR/<table>/run_id=<ID>.parquet"
    )
    p.set_defaults(func=cmd_export)

    p = commands.add_parser(
        "merge", help="combine a cluster run's telemetry shards into one store (and Parquet)"
    )
    p.add_argument("out_dir", type=Path, metavar="OUT", help="the run's output directory")
    p.add_argument(
        "--into", type=Path, metavar="DB", help="the merged store (default: OUT/telemetry.sqlite)"
    )
    p.add_argument("--parquet", type=Path, metavar="DIR", help="also export it to Parquet here")
    p.set_defaults(func=cmd_merge)

    p = commands.add_parser("serve", help="a Prometheus endpoint over the store")
    _db_argument(p)
    p.add_argument(
        "--port", type=int, default=serve.DEFAULT_PORT, help=f"port (default {serve.DEFAULT_PORT})"
    )
    p.add_argument(
        "--host",
        default=serve.DEFAULT_HOST,
        help=f"address to bind (default {serve.DEFAULT_HOST}: this machine only)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=serve.DEFAULT_POLL_S,
        metavar="S",
        help=f"recompute the figures at most every S seconds (default {serve.DEFAULT_POLL_S:g})",
    )
    p.set_defaults(func=cmd_serve)


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        required=True,
        type=Path,
        metavar="PATH",
        help=f"the run's {store.STORE_FILE} (or its output directory)",
    )


def _usage_error(command: str, message: str) -> int:
    print(f"{_PROG} {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# -- slo ------------------------------------------------------------------------------------


def cmd_slo(args: argparse.Namespace) -> int:
    """``slo``: judge one run; 0 all met, 1 any missed, 2 usage error."""
    try:
        targets = slo.load_targets(args.targets) if args.targets else slo.SloTargets()
        db_path = store.resolve_db_path(args.db)
        with contextlib.closing(store.open_readonly(db_path)) as conn:
            run = store.find_run(conn, args.run, db_path)
            report = slo.evaluate_run(
                conn, run.run_id, targets, out_dir=db_path.parent, verify_files=args.verify_files
            )
    except (StoreError, slo.TargetsError) as exc:
        return _usage_error("slo", str(exc))
    if args.json:
        payload = {**report.to_json(), "db": str(db_path), "targets": asdict(targets)}
        print(json.dumps(payload, indent=1))
    else:
        _print_slo(report, db_path)
    return EXIT_OK if report.passed else EXIT_FAILED


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "/h":
        return f"{value:.1f} /h"
    if unit == "/1k":
        return f"{value:.1f} /1k"
    return f"{value:g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "duration unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _print_slo(report: slo.SloReport, db_path: Path) -> None:
    console = Console(highlight=False)
    state = "running, figures computed live" if report.running else "finished"
    table = Table(
        title=f"SLOs of run {report.run_id} ({state}, {_duration(report.duration_s)})",
        title_justify="left",
    )
    for header, justify in (
        ("SLI", "left"),
        ("value", "right"),
        ("target", "right"),
        ("result", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    verdicts = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[dim]n/a[/]"}
    for r in report.results:
        op = "≥" if r.op == ">=" else "≤"
        table.add_row(
            r.label, _fmt(r.value, r.unit), f"{op} {_fmt(r.target, r.unit)}", verdicts[r.passed]
        )
    console.print(table)
    opens = report.summary.get("breaker_open_events")
    console.print(f"breaker opens: {opens}; store: {db_path}")
    for bad in report.corrupt[:20]:
        console.print(f"  corrupt: {bad.work_id} {bad.final_path}: {bad.problem}")
    if len(report.corrupt) > 20:
        console.print(f"  … and {len(report.corrupt) - 20} more (use --json for all)")
    failed = [r.label for r in report.results if r.passed is False]
    na = sum(r.passed is None for r in report.results)
    if failed:
        console.print(
            f"[bold red]FAIL[/]: {len(failed)} of {len(report.results)} SLIs missed "
            f"({', '.join(failed)})"
        )
    else:
        console.print(
            f"[green]PASS[/]: every SLI met ({na} n/a)" if na else "[green]PASS[/]: every SLI met"
        )


# -- sources ------------------------------------------------------------------------------------


def cmd_sources(args: argparse.Namespace) -> int:
    """``sources``: per key, each source's record and the learned order's next decision."""
    from oafetch.learning import report

    try:
        with contextlib.closing(store.open_readonly(args.db)) as conn:
            reports = report.source_report(conn, key_filter=args.key)
    except StoreError as exc:
        return _usage_error("sources", str(exc))
    if args.json:
        print(json.dumps(report.to_json(reports), indent=1))
    else:
        report.print_report(reports)
    return EXIT_OK


# -- query ------------------------------------------------------------------------------------


def cmd_query(args: argparse.Namespace) -> int:
    """``query``: print the result of one read-only SQL statement; 2 on any error."""
    try:
        result = query.run_query(args.db, args.sql)
    except (StoreError, query.QueryError) as exc:
        return _usage_error("query", str(exc))
    if args.format == "csv":
        query.write_csv(result, sys.stdout)
    elif args.format == "json":
        query.write_json(result, sys.stdout)
    else:
        _print_table(result, max(0, args.max_rows))
    return EXIT_OK


def _print_table(result: query.QueryResult, max_rows: int) -> None:
    console = Console(highlight=False)
    table = Table(*result.columns)
    for row in result.rows[:max_rows]:
        table.add_row(*(query.cell_text(v) if v is not None else "[dim]NULL[/]" for v in row))
    console.print(table)
    hidden = len(result.rows) - max_rows
    shown = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    console.print(
        f"{shown} ({hidden} not shown: raise --max-rows or use --format csv)"
        if hidden > 0
        else shown
    )


# -- export ------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    """``export``: one Parquet file per table; 2 on any error."""
    try:
        files = parquet.export_store(args.db, args.out, run_id=args.run)
    except StoreError as exc:
        return _usage_error("export", str(exc))
    for f in files:
        print(f"{f.table:<20} {f.rows:>12,} rows  {f.path}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    """``merge``: every ``OUT/telemetry-shards/*.sqlite`` into one store; 2 on any error."""
    from oafetch.telemetry.merge import SHARDS_DIR, merge_stores

    shards = sorted((args.out_dir / SHARDS_DIR).glob("*.sqlite"))
    target = args.into or args.out_dir / "telemetry.sqlite"
    try:
        rows = merge_stores(shards, target, out_dir=args.out_dir)
        print(f"{len(shards)} shards, {rows:,} event rows -> {target}")
        if args.parquet:
            for f in parquet.export_store(target, args.parquet):
                print(f"{f.table:<20} {f.rows:>12,} rows  {f.path}")
    except StoreError as exc:
        return _usage_error("merge", str(exc))
    return EXIT_OK


# -- serve ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: a Prometheus endpoint until Ctrl-C; 2 when the store or address is unusable."""
    if args.poll < 0:
        return _usage_error("serve", f"--poll must be >= 0 seconds (got {args.poll})")
    try:
        server = serve.MetricsServer(args.db, host=args.host, port=args.port, poll_s=args.poll)
    except StoreError as exc:
        return _usage_error("serve", str(exc))
    except OSError as exc:
        return _usage_error(
            "serve",
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(pick another --port, or stop what uses it)",
        )
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print(f"warning: serving on {args.host}, reachable from other machines", file=sys.stderr)
    print(
        f"serving {server.db_path} at {server.url} (refresh every {args.poll:g} s); Ctrl-C to stop",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return EXIT_OK
