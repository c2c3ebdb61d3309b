"""Running a command group (``oafetch cache …``, ``oafetch telemetry …``) on its own, for tests."""

from __future__ import annotations

import argparse
from collections.abc import Callable

EXIT_USAGE = 2


def run_group(
    prog: str, add_commands: Callable[[argparse.ArgumentParser], None], argv: list[str] | None
) -> int:
    """Parse ``argv`` with a parser holding the group's commands and run the chosen handler.

    Returns the handler's exit code; ``--help`` returns 0 and a usage error 2 (never exits).
    """
    parser = argparse.ArgumentParser(prog=prog)
    add_commands(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.func
    return handler(args)
