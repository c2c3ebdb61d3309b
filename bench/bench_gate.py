"""Politeness where the server counts it, on a loaded machine.

Starts busy loops on every core (``--load``), serves small PDFs from a loopback server that
stamps each request as it arrives, runs a batch against it under a rate policy, and reports
what the server saw: the smallest gap between two requests as a fraction of ``1/rate`` (target
≥ 0.97), and the most requests any window of each configured length held (target: ≤ its limit).

    .venv/bin/python bench/bench_gate.py --load 2 --works 40
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import fast_config
from loopback import pdf_bytes, start
from oafetch import Downloader
from oafetch.rates import parse_rate


def _spin() -> None:  # pragma: no cover - a busy loop in a child process
    while True:
        pass


def _max_in_window(stamps: list[float], period: float) -> int:
    return max(bisect.bisect_left(stamps, t + period) - i for i, t in enumerate(stamps))


def measure(policy: str, works: int, workers: int) -> str:
    server = start("127.0.0.1")
    for i in range(works):
        body = pdf_bytes(2000, seed=i)
        server.routes[f"/g{i}.pdf"] = lambda h, b=body: h.reply(200, b, "application/pdf")
    with tempfile.TemporaryDirectory() as tmp:
        config = fast_config(
            Path(tmp) / "out",
            politeness={"enabled": True, "defer_after_s": 60.0},
            rates={"127.0.0.1": policy},
            robots={"enabled": False},
            workers=workers,
        )
        with Downloader(config, resume=False) as dl:
            list(dl.run([server.url(f"/g{i}.pdf") for i in range(works)]))
    server.server.shutdown()
    stamps = sorted(s.ts for s in server.log)
    windows = parse_rate(policy).windows
    spacing = min(windows, key=lambda w: w.period_s).interval_s
    worst_gap = min(b - a for a, b in itertools.pairwise(stamps))
    held = ", ".join(
        f"{_max_in_window(stamps, w.period_s)}/{w.count} in {w.period_s:g}s" for w in windows
    )
    return (
        f"| `{policy}` | {len(stamps)} | {worst_gap / spacing:.3f} x 1/rate "
        f"({worst_gap * 1000:.1f} ms) | {held} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--load", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--works", type=int, default=40)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for proc in spinners:
        proc.start()
    try:
        time.sleep(0.5)
        print(f"busy loops: {args.load}; {args.works} requests per policy, {args.workers} workers")
        print("| policy | requests | worst server-observed gap | most in any window |")
        print("|---|---|---|---|")
        for policy in ("4/s", "5/s", "10/s", "5/s, 12/3s", "2/s"):
            print(measure(policy, args.works, args.workers), flush=True)
    finally:
        for proc in spinners:
            proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
