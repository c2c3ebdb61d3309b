"""The identity check's cost: milliseconds per file, and its share of a batch's CPU.

``.venv/bin/python bench/bench_identity.py [--works 200] [--rounds 5]``

1. Per file: :func:`oafetch.identity.check` (PDFium reads the first two pages, rapidfuzz scores
   the title) on the sandbox corpus's PDFs (each work's own file and its wrong PDFs: another
   article, a supplement, an access notice), on the real article PDFs of
   ``tests/fixtures/real/pdf`` (origins in SOURCES.tsv) and on the sandbox's 60 MiB "oversized"
   file (no text layer, no cross-reference table: the worst case PDFium meets). Wall-clock
   milliseconds per call, p50/p95 (nearest rank) over ``rounds`` passes.
2. In a batch: the sandbox web (in this process) and a ``--works`` batch with the check on,
   then off; the CPU the checks used (thread CPU time summed over every call) against the
   process's CPU for the batch (which also pays the sandbox's servers, so the share of
   oafetch's own CPU is somewhat higher), and the process CPU of the same batch with the
   check off.

Prints a Markdown snippet for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oafetch import Downloader, identity
from oafetch.demo import demo_config
from oafetch.fallback import identity as fallback_identity
from oafetch.sandbox import Corpus, Sandbox
from oafetch.sandbox.model import Behaviour, Mode

REAL = Path(__file__).parent.parent / "tests" / "fixtures" / "real" / "pdf"
# Faster than the sandbox's defaults (as tests/test_sandbox_run.py), enforced on both sides.
RATES = {
    "unpaywall": "40/s",
    "crossref": "40/s",
    "openalex": "40/s",
    "arxiv_api": "5/s",
    "arxiv": "5/s",
    "*": "20/s",
}
WRONG = (Mode.WRONG_WORK, Mode.SUPPLEMENT_PDF, Mode.NOTICE_PDF)


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(p * len(ordered) / 100))) - 1]


def timed(files: list[tuple[Path, identity.Expected]], rounds: int) -> list[float]:
    out: list[float] = []
    for _ in range(rounds):
        for path, expected in files:
            started = time.perf_counter()
            identity.check(path, expected)
            out.append((time.perf_counter() - started) * 1000)
    return out


def per_file(folder: Path, works: int, rounds: int) -> list[tuple[str, int, float, float]]:
    corpus = Corpus(seed=7, n_works=works, oversized_bytes=60 * 1024 * 1024)
    own: list[tuple[Path, identity.Expected]] = []
    wrong: list[tuple[Path, identity.Expected]] = []
    oversized: list[tuple[Path, identity.Expected]] = []
    for work in corpus.works:
        expected = identity.Expected(work.title, work.doi, f"Sandbox{work.index}")
        if work.behaviour is Behaviour.OVERSIZED:
            path = folder / f"big-{work.index}.pdf"
            with path.open("wb") as fh:
                for piece in corpus.oversized_chunks(work):
                    fh.write(piece)
            oversized.append((path, expected))
            continue
        path = folder / f"own-{work.index}.pdf"
        path.write_bytes(corpus.pdf_bytes(work))
        own.append((path, expected))
        if work.index % 10 == 0:
            for mode in WRONG:
                wrong_path = folder / f"wrong-{work.index}-{mode}.pdf"
                wrong_path.write_bytes(corpus.wrong_bytes(work, mode))
                wrong.append((wrong_path, expected))
    real = [
        (p, identity.Expected(title="A title that is not there", doi="10.9999/none"))
        for p in sorted(REAL.glob("*.pdf"))
    ]
    rows = []
    for label, files, n in (
        ("sandbox PDFs (the works' own)", own, rounds),
        ("sandbox wrong PDFs (other article, supplement, notice)", wrong, rounds),
        ("real PDFs (tests/fixtures/real/pdf)", real, rounds * 10),
        ("sandbox 60 MiB oversized file (no text, no xref)", oversized, 1),
    ):
        if files:
            ms = timed(files, n)
            rows.append((label, len(ms), nearest_rank(ms, 50), nearest_rank(ms, 95)))
    return rows


def batch(out: Path, works: int, mode: str) -> tuple[float, float, int, float]:
    """(process CPU s, identity CPU s, checks, wall s) of one sandbox batch."""
    spent = {"cpu": 0.0, "n": 0}
    original: Callable[..., Any] = fallback_identity.check

    def counting(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent["cpu"] += time.thread_time() - started
            spent["n"] += 1

    fallback_identity.check = counting  # type: ignore[assignment]
    try:
        corpus = Corpus(seed=7, n_works=works, oversized_bytes=8 * 1024 * 1024)
        with Sandbox(corpus=corpus, rates=RATES, arxiv_crawl_delay=0.2) as sandbox:
            config = demo_config(
                sandbox,
                out,
                workers=8,
                cache={"enabled": False},
                download={"identity": mode, "fsync": False},
            )
            cpu0, wall0 = time.process_time(), time.perf_counter()
            with Downloader(config, resume=False) as dl:
                results = list(dl.run([w.identifier for w in sandbox.works]))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        assert len(results) == works
    finally:
        fallback_identity.check = original  # type: ignore[assignment]
    return cpu, spent["cpu"], int(spent["n"]), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = per_file(Path(tmp), args.works, args.rounds)
        on = batch(Path(tmp) / "on", args.works, "check")
        off = batch(Path(tmp) / "off", args.works, "off")
    load = os.getloadavg()[0]
    print(f"`.venv/bin/python bench/bench_identity.py --works {args.works} --rounds {args.rounds}`")
    print(
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f})"
    )
    print()
    print("| files | calls | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for label, n, p50, p95 in rows:
        print(f"| {label} | {n} | {p50:.2f} | {p95:.2f} |")
    print()
    cpu, ident, checks, wall = on
    print(
        f"Batch of {args.works} sandbox works, check on: {checks} checks used "
        f"{ident * 1000:.0f} ms of CPU = **{100 * ident / cpu:.1f} %** of the process's "
        f"{cpu:.2f} s CPU ({wall:.1f} s wall); check off: {off[0]:.2f} s CPU "
        f"({off[3]:.1f} s wall)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
