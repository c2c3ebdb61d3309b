"""``python -m oafetch.sandbox``: serve the sandbox web until Ctrl-C.

Prints the base URLs as one JSON object on stdout when every host is listening.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .corpus import MIB, Corpus
from .sandbox import Sandbox, serve_forever


def _rate(text: str) -> tuple[str, str]:
    service, sep, rate = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SERVICE=RATE (got {text!r})")
    return service.strip(), rate.strip()


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="python -m oafetch.sandbox", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--works", type=int, default=500, help="number of works")
    parser.add_argument("--publishers", type=int, default=6, help="publisher hosts (>= 4)")
    parser.add_argument("--port", type=int, default=0, help="one fixed port for every host")
    parser.add_argument("--host-base", type=int, default=2, help="first host is 127.0.0.N")
    parser.add_argument("--log", help="append every request to this JSONL file")
    parser.add_argument("--no-rates", action="store_true", help="do not enforce rates")
    parser.add_argument(
        "--rate",
        type=_rate,
        action="append",
        default=[],
        metavar="SERVICE=RATE",
        help='e.g. unpaywall=10/s, "*=2/s"',
    )
    parser.add_argument("--oversized-mib", type=int, default=60)
    parser.add_argument("--expected", help="write the works' expectations to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        corpus = Corpus(
            args.seed, args.works, args.publishers, oversized_bytes=args.oversized_mib * MIB
        )
        sandbox = Sandbox(
            corpus,
            log_path=args.log,
            rates=dict(args.rate),
            rates_enforced=not args.no_rates,
            host_base=args.host_base,
            port=args.port,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.expected:
        with open(args.expected, "w", encoding="utf-8") as fh:
            json.dump([w.to_dict() for w in corpus.works], fh, indent=1)
    print("sandbox: serving; Ctrl-C stops", file=sys.stderr)
    serve_forever(sandbox)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
