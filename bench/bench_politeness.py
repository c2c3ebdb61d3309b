"""Politeness makespan: how close a batch over many rate-limited hosts gets to its lower bound.

2,000 works over 30 hosts with different rates, one slow host holding 10 % of the works. Lower
bound = max over hosts of (requests to the host ÷ its rate). Reports makespan ÷ lower bound and
the server-side violations (requests that arrived sooner than the host's rate allows).

    .venv/bin/python bench/bench_politeness.py [--works 2000] [--hosts 30]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import multihost  # noqa: E402

import oafetch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(3)
    slow_rate = 4.0
    rates = [slow_rate] + [rng.choice([4.0, 5.0, 8.0, 10.0, 20.0]) for _ in range(args.hosts - 1)]
    bases, finish = multihost.serve_in_subprocess(rates)
    ips = [b.split("//")[1].split(":")[0] for b in bases]
    stats: list[tuple[list[float], int]] = []
    try:
        n_slow = args.works // 10
        assign = [0] * n_slow + [1 + i % (args.hosts - 1) for i in range(args.works - n_slow)]
        rng.shuffle(assign)
        urls = [f"{bases[h]}/w{n}.pdf" for n, h in enumerate(assign)]
        per_host = {h: assign.count(h) + 1 for h in range(args.hosts)}  # + robots.txt
        lower = max(per_host[h] / rates[h] for h in range(args.hosts))
        with tempfile.TemporaryDirectory() as tmp:
            config = oafetch.Config(
                out_dir=Path(tmp) / "out",
                workers=args.workers,
                mailto="bench@oafetch.test",
                rates={ip: f"{rate:g}/s" for ip, rate in zip(ips, rates, strict=True)},
                download={"fsync": False, "min_pdf_bytes": 100},
                telemetry={"enabled": True},
                cache={"enabled": False},
            )
            started = time.monotonic()
            with oafetch.Downloader(config, resume=False) as dl:
                results = list(dl.run(urls))
            makespan = time.monotonic() - started
        ok = sum(r.ok for r in results)
    finally:
        stats = finish()
    violations = sum(v for _, v in stats)
    print(f"| machine | {platform.machine()}, {platform.python_version()}, {_cpus()} CPUs |")
    print(f"| works / hosts / workers | {args.works} / {args.hosts} / {args.workers} |")
    print(f"| stored | {ok} of {len(urls)} |")
    print(f"| lower bound | {lower:.1f} s (slow host: {per_host[0]} requests at {slow_rate:g}/s) |")
    print(f"| makespan | {makespan:.1f} s |")
    print(f"| makespan ÷ lower bound | **{makespan / lower:.3f}** (target ≤ 1.15) |")
    print(f"| server-side rate violations | {violations} |")


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
