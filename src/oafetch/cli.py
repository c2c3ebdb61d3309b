"""The ``oafetch`` command: fetch, run, demo, sandbox, telemetry, cache.

Exit codes: 0 success (for ``run``: the batch completed, whatever each work's outcome), 1 a
check failed (``fetch`` with a failed work, ``telemetry slo``), 2 bad usage (config, input,
locked output dir), 74 outputs cannot be written (full disk), 130 interrupted (Ctrl-C),
143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from oafetch._version import __version__
from oafetch.config import Config
from oafetch.errors import OafetchError
from oafetch.results import DownloadResult
from oafetch.tokens import Outcome

log = logging.getLogger("oafetch")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="output directory (default: oafetch-out)")
    parser.add_argument(
        "--config", type=Path, help="oafetch.toml to load (default: ./oafetch.toml)"
    )
    parser.add_argument("--mailto", help="your email, sent to APIs and in the User-Agent")
    parser.add_argument("--workers", type=int, help="concurrent works (default 8)")
    parser.add_argument("--no-telemetry", action="store_true", help="write no telemetry at all")
    parser.add_argument(
        "--otlp-endpoint", help="send traces and metrics to this OTLP/HTTP collector"
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve live Prometheus metrics on this port"
    )
    parser.add_argument(
        "--metrics-linger",
        type=float,
        metavar="SECONDS",
        help="after the run, serve the final metrics until scraped, at most this long "
        "(default 30; 0 stops at once)",
    )
    parser.add_argument("--no-robots", action="store_true", help="do not consult robots.txt")
    parser.add_argument(
        "--no-fsync", action="store_true", help="skip fsync before publishing files"
    )
    parser.add_argument(
        "--verify-stored",
        action="store_true",
        help="on resume, re-hash files earlier runs stored (default: check existence and size)",
    )
    parser.add_argument("--cache-dir", type=Path, help="HTTP cache directory (shared between runs)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the HTTP cache")
    parser.add_argument(
        "--learn-from",
        type=Path,
        action="append",
        metavar="DIR|FILE",
        help="learn the order of sources from this earlier run (out dir or telemetry.sqlite); "
        "repeatable",
    )
    parser.add_argument(
        "--resolver-order",
        choices=("configured", "learned"),
        help="ask sources in the configured order, or learned from telemetry (default)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the summary")


def _cache_flags(args: argparse.Namespace) -> dict[str, Any] | None:
    flags: dict[str, Any] = {}
    if getattr(args, "no_cache", False):
        flags["enabled"] = False
    if getattr(args, "cache_dir", None) is not None:
        flags["dir"] = args.cache_dir
    return flags or None


def _download_flags(args: argparse.Namespace) -> dict[str, Any] | None:
    flags: dict[str, Any] = {}
    if getattr(args, "no_fsync", False):
        flags["fsync"] = False
    if getattr(args, "verify_stored", False):
        flags["verify_stored"] = True
    return flags or None


def load_config(args: argparse.Namespace, **extra: Any) -> Config:
    """The config file + env + the flags that were given (flags win)."""
    telemetry: dict[str, Any] = {}
    if getattr(args, "no_telemetry", False):
        telemetry["enabled"] = False
    if getattr(args, "otlp_endpoint", None):
        telemetry["otlp_endpoint"] = args.otlp_endpoint
    if getattr(args, "metrics_port", None) is not None:
        telemetry["metrics_port"] = args.metrics_port
    if getattr(args, "metrics_linger", None) is not None:
        telemetry["metrics_linger_s"] = args.metrics_linger
    overrides: dict[str, Any] = {
        "out_dir": getattr(args, "out", None),
        "mailto": getattr(args, "mailto", None),
        "workers": getattr(args, "workers", None),
        "processes": getattr(args, "processes", None),
        "files_to": getattr(args, "files_to", None),
        "telemetry": telemetry or None,
        "robots": {"enabled": False} if getattr(args, "no_robots", False) else None,
        "download": _download_flags(args),
        "cache": _cache_flags(args),
        "fallback": _fallback_flags(args),
        **extra,
    }
    return Config.load(getattr(args, "config", None), **overrides)


def _fallback_flags(args: argparse.Namespace) -> dict[str, Any] | None:
    flags: dict[str, Any] = {}
    if getattr(args, "learn_from", None):
        flags["learn_from"] = list(args.learn_from)
    if getattr(args, "resolver_order", None):
        flags["resolver_order"] = args.resolver_order
    return flags or None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _processes(text: str) -> int | str:
    return "auto" if text.strip().lower() == "auto" else _positive(text)


def _print_result(result: DownloadResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), sort_keys=True))
        return
    stored_at = result.object_url or result.path
    where = f" → {stored_at}" if stored_at else ""
    sha = f" sha256={result.sha256[:16]}…" if result.sha256 else ""
    print(
        f"{result.outcome:<7} {result.reason:<14} {result.work_id}{where}{sha}"
        + (f"  ({result.message})" if not result.ok and result.message else "")
    )


def cmd_fetch(args: argparse.Namespace) -> int:
    from oafetch.batch import check_out_dir
    from oafetch.downloader import Downloader

    config = load_config(args)
    check_out_dir(Path(config.out_dir))
    failed = 0
    with Downloader(config, resume=not args.no_resume) as dl:
        for ident in args.ids:
            result = dl.fetch(ident, dry_run=args.dry_run)
            _print_result(result, args.json)
            failed += result.outcome is Outcome.ERROR or (
                result.outcome is Outcome.SKIP and not args.dry_run
            )
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from oafetch.batch import run_batch

    return run_batch(args, load_config(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from oafetch.demo import run_demo

    return run_demo(args)


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from oafetch.sandbox import Corpus, Sandbox, serve_forever

    serve_forever(Sandbox(Corpus(seed=args.seed, n_works=args.works), log_path=args.log))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oafetch",
        description="Find and download open-access full texts of scholarly works, politely.",
    )
    parser.add_argument("--version", action="version", version=f"oafetch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = sub.add_parser(
        "fetch", help="fetch a few works by DOI, arXiv id, PMID, PMCID, OpenAlex id or URL"
    )
    fetch.add_argument("ids", nargs="+", metavar="ID")
    fetch.add_argument("--json", action="store_true", help="one JSON object per result")
    fetch.add_argument("--dry-run", action="store_true", help="resolve only; download nothing")
    fetch.add_argument(
        "--no-resume", action="store_true", help="fetch again even if already stored"
    )
    _common(fetch)
    fetch.set_defaults(func=cmd_fetch)

    run = sub.add_parser(
        "run", help="fetch a batch from a txt/CSV/JSONL file of ids, or - for stdin"
    )
    run.add_argument("input", nargs="?", help="input file (txt, .csv, .jsonl) or - for stdin")
    run.add_argument(
        "--format", choices=("txt", "csv", "jsonl"), help="input format (default: by suffix)"
    )
    run.add_argument("--column", help="CSV column / JSONL key holding the identifier")
    run.add_argument(
        "--openalex-filter", help="fetch the works an OpenAlex filter selects (e.g. is_oa:true)"
    )
    run.add_argument(
        "--resume",
        dest="resume",
        action="store_true",
        default=True,
        help="skip works already stored in --out (the default)",
    )
    run.add_argument(
        "--no-resume", dest="resume", action="store_false", help="ignore earlier runs in --out"
    )
    run.add_argument("--dry-run", action="store_true", help="resolve candidates, download nothing")
    run.add_argument(
        "--list-only", action="store_true", help="record every candidate, download nothing"
    )
    run.add_argument("--max", type=_positive, help="stop after this many works")
    run.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where works run: this process (default) or a Ray cluster (pip install oafetch[ray])",
    )
    run.add_argument(
        "--processes",
        type=_processes,
        metavar="N|auto",
        help="worker processes on this machine, each running shards of the batch with the"
        " run's one rate budget per host; 1: every work in this process (default auto: one per"
        " core, or one for --list-only, --metrics-port and inputs under 1,000 works)",
    )
    run.add_argument(
        "--address",
        default="auto",
        help="--engine ray: auto (this machine's cluster), local (a private one), ray://HOST:PORT",
    )
    run.add_argument(
        "--files-to",
        metavar="URL",
        help="publish the stored files there instead of --out: s3://bucket/prefix, gs://…,"
        " file:///path (pip install oafetch[s3]); --out keeps the manifest, state and telemetry",
    )
    run.add_argument(
        "--shard-size",
        type=_positive,
        help="works per shard (--engine ray, --processes, --files-to; default 100)",
    )
    _common(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="start the sandbox web and run a real batch against it")
    demo.add_argument("--works", type=int, default=120, help="how many sandbox works to fetch")
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="output directory")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=cmd_demo)

    sandbox = sub.add_parser("sandbox", help="the offline sandbox scholarly web")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_sub.add_parser("serve", help="serve the sandbox until Ctrl-C")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--works", type=int, default=500)
    serve.add_argument("--log", type=Path, help="append every request served to this JSONL file")
    serve.set_defaults(func=cmd_sandbox_serve)

    for module in ("oafetch.telemetry.analytics_cli", "oafetch.cache_cli"):
        try:
            register = __import__(module, fromlist=["register"]).register
        except (ImportError, AttributeError):
            continue
        register(sub)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    level = (
        logging.DEBUG
        if getattr(args, "verbose", False)
        else (logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    )
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("httpx", "httpcore", "opentelemetry"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``oafetch`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args)
    # SIGINT (Ctrl-C) and SIGTERM (containers, Slurm, systemd) stop the batch the same way:
    # in-flight works finish or end cleanly, records are complete, the run resumes; a second
    # signal aborts at once. The exit code tells which signal it was (128 + its number).
    stopped: dict[str, int] = {"count": 0, "signum": 0}

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stopped["count"] += 1
        stopped["signum"] = stopped["signum"] or signum
        if stopped["count"] > 1:
            raise KeyboardInterrupt
        from oafetch import batch

        batch.request_stop()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\ninterrupting ({name}): finishing in-flight works cleanly (send it again to abort)",
            file=sys.stderr,
        )

    from oafetch import batch

    batch.reset_stop()
    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code: int = args.func(args)
        return 128 + stopped["signum"] if stopped["count"] else code
    except OafetchError as exc:
        print(f"oafetch: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output directory cannot be written: full disk, read-only …
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"oafetch: error: cannot write{where}: {exc.strerror or exc}; free space or choose "
            "another --out, then run again (a batch resumes where it stopped)",
            file=sys.stderr,
        )
        from oafetch.batch import EXIT_DISK

        return EXIT_DISK
    except KeyboardInterrupt:
        print("oafetch: aborted", file=sys.stderr)
        return 128 + (stopped["signum"] or signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
