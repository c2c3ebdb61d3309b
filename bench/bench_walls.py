"""Wall-or-page verdicts (:func:`oafetch.walls.wall`) on saved real pages: ms per page.

``.venv/bin/python bench/bench_walls.py [rounds]`` judges the saved PeerJ (358 KB) and eLife
(167 KB) article pages and the APS landing page that loads Cloudflare's injected script (6 KB),
all under tests/fixtures/real/pages/ (origins in SOURCES.tsv there), ``rounds`` times each, and
prints a Markdown table of the median milliseconds per page and the verdict. Run it on two
commits to compare implementations (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import gzip
import statistics
import sys
import time
from pathlib import Path

from oafetch.walls import wall

PAGES = Path(__file__).parent.parent / "tests" / "fixtures" / "real" / "pages"
NAMES = ("peerj-4375.html.gz", "elife-44753.html.gz", "aps-landing-cloudflare-jsd.html")


def main(rounds: int) -> None:
    print("| page | KB | ms per verdict (median) | verdict |")
    print("|---|---:|---:|---|")
    for name in NAMES:
        raw = (PAGES / name).read_bytes()
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            verdict = wall(raw)
            times.append((time.perf_counter() - started) * 1000.0)
        shown = verdict or "page"
        print(f"| {name} | {len(raw) // 1024} | {statistics.median(times):.1f} | {shown} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
