"""``oafetch cache stats|purge``: look into and trim the shared HTTP cache.

``register(subparsers)`` adds the group to the main ``oafetch`` parser; ``main(argv)`` runs the
same group as a standalone parser (tests call it in-process). Handlers return the exit status:
0 success, 2 a usage error (bad ``--older-than``, bad config, a file that is not a cache
database) with a message on stderr.

The cache directory is ``--cache-dir``, else ``[cache] dir`` of the config file
(``--config``, default ``./oafetch.toml``) or ``OAFETCH_CACHE__DIR``, else the user cache
directory (``platformdirs.user_cache_dir("oafetch")``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oafetch.cligroup import run_group
from oafetch.config import CacheConfig, Config
from oafetch.errors import OafetchError
from oafetch.http.cache import database_path
from oafetch.http.cache_db import CacheStats, purge, stats

EXIT_OK, EXIT_USAGE = 0, 2
_PROG = "oafetch cache"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cache`` command group to the ``oafetch`` parser's subcommands."""
    parser = subparsers.add_parser(
        "cache",
        help="statistics and purging of the shared HTTP cache (metadata, landing pages, robots)",
        description="Look into and trim the shared HTTP cache.",
    )
    _add_commands(parser)


def main(argv: list[str] | None = None) -> int:
    """Run ``oafetch cache …`` with ``argv`` (without the ``cache`` word); return the exit code."""
    return run_group(_PROG, _add_commands, argv)


def _add_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)

    p = commands.add_parser("stats", help="entries, size, per-host counts, oldest/newest entry")
    _location(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_stats)

    p = commands.add_parser(
        "purge", help="delete entries: all of them, or by --host and/or --older-than"
    )
    _location(p)
    p.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="H",
        help="only entries of host H or its subdomains (repeatable)",
    )
    p.add_argument(
        "--older-than",
        metavar="D",
        help="only entries stored more than D ago (e.g. 7d, 12h, 30m, 90s)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_purge)


def _location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, help="the cache directory (default: see below)")
    parser.add_argument(
        "--config", type=Path, help="oafetch.toml naming [cache] dir (default: ./oafetch.toml)"
    )


def _database(args: argparse.Namespace) -> Path:
    """The database file the command works on (``--cache-dir`` > config > user cache dir)."""
    if args.cache_dir is not None:
        return database_path(Path(args.cache_dir).expanduser())
    return database_path(Config.load(args.config).cache.dir)


def _error(message: str) -> int:
    print(f"oafetch cache: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def render_stats(found: CacheStats) -> str:
    """The human-readable ``stats`` report."""
    if not found.exists:
        return f"cache: {found.path}\nno cache yet (0 entries)"
    data = found.as_dict()
    lines = [
        f"cache:   {found.path}",
        f"entries: {found.entries}"
        + (f" (+{found.expired} expired, removed by the next runs)" if found.expired else ""),
        f"size:    {_size(found.file_bytes)} on disk, {_size(found.body_bytes)} of bodies",
        f"oldest:  {data['oldest_iso'] or '-'}",
        f"newest:  {data['newest_iso'] or '-'}",
    ]
    if found.roles:
        lines.append("roles:   " + ", ".join(f"{r} {n}" for r, n in found.roles.items()))
    if found.hosts:
        width = max(len(h) for h in found.hosts)
        lines.append("hosts:")
        lines.extend(f"  {host:<{width}}  {count}" for host, count in found.hosts.items())
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    """``oafetch cache stats``: print what the cache holds."""
    try:
        found = stats(_database(args))
    except OafetchError as exc:
        return _error(str(exc))
    print(json.dumps(found.as_dict(), sort_keys=True) if args.json else render_stats(found))
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    """``oafetch cache purge``: delete all entries, or those matching --host/--older-than."""
    older_than: float | None = None
    if args.older_than is not None:
        try:
            older_than = CacheConfig.parse_duration(args.older_than)
        except ValueError as exc:
            return _error(f"--older-than: {exc}")
    try:
        path = _database(args)
        removed = purge(path, hosts=tuple(args.host), older_than_s=older_than)
        left = stats(path).entries
    except OafetchError as exc:
        return _error(str(exc))
    if args.json:
        print(json.dumps({"path": str(path), "purged": removed, "entries_left": left}))
    else:
        print(f"purged {removed} entries from {path} ({left} left)")
    return EXIT_OK
