"""Learned resolver order: a batch run twice on a sandbox web where the source that holds a
work's copy depends on its publisher (``Corpus(profile="by_publisher")``, the default) or on the
OA status Unpaywall reports (``--profile by_oa_status``).

Run 1 starts cold (the configured tiers until the run has evidence, learning as it goes); run 2
learns from run 1's store (``fallback.learn_from``, i.e. ``--learn-from``). A run with
``resolver_order = "configured"`` is the baseline. Requests are counted server-side (the
sandbox's log, robots.txt included); time to first PDF is each stored work's ``ttfp_ms``.

    .venv/bin/python bench/bench_learned_order.py [--works 60] [--workers 4] [--profile P]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

from oafetch import Downloader
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox

RATES = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "20/s"}


def one_run(
    sandbox: Sandbox, out: Path, ids: list[str], workers: int, **fallback: Any
) -> dict[str, Any]:
    sandbox.clear_log()
    sandbox.reset_state()
    config = demo_config(
        sandbox,
        out,
        workers=workers,
        cache={"enabled": False},
        telemetry={"enabled": True},
        fallback=fallback,
    )
    with Downloader(config, resume=False) as dl:
        results = list(dl.run(ids))
    stored = [r for r in results if r.ok]
    requests = len(sandbox.requests())
    ttfp = [r.ttfp_ms for r in stored if r.ttfp_ms is not None]
    return {
        "stored": len(stored),
        "requests": requests,
        "per_work": requests / max(1, len(stored)),
        "ttfp_p50": statistics.median(ttfp) if ttfp else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", choices=("by_publisher", "by_oa_status"), default="by_publisher"
    )
    args = parser.parse_args()
    corpus = Corpus(seed=args.seed, n_works=args.works, profile=args.profile)
    with tempfile.TemporaryDirectory() as tmp, Sandbox(corpus=corpus, rates=RATES) as sandbox:
        ids = [w.identifier for w in sandbox.works]
        base = one_run(
            sandbox, Path(tmp) / "configured", ids, args.workers, resolver_order="configured"
        )
        first = one_run(sandbox, Path(tmp) / "run1", ids, args.workers)
        second = one_run(
            sandbox, Path(tmp) / "run2", ids, args.workers, learn_from=[Path(tmp) / "run1"]
        )
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    print(f"works: {args.works} ({args.profile}, seed {args.seed}), workers: {args.workers}")
    print("| run | stored | requests | requests / stored work | TTFP p50 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in (
        ("configured order", base),
        ("learned, run 1 (cold)", first),
        ("learned, run 2 (learn_from run 1)", second),
    ):
        print(
            f"| {name} | {r['stored']} | {r['requests']} | {r['per_work']:.2f} "
            f"| {r['ttfp_p50']:.0f} ms |"
        )
    fewer = 1 - second["per_work"] / first["per_work"]
    faster = 1 - second["ttfp_p50"] / first["ttfp_p50"]
    print(
        f"run 2 vs run 1: {fewer:.0%} fewer requests per stored work (target ≥ 40 %), "
        f"TTFP p50 {faster:.0%} lower (target ≥ 25 %), yield {second['stored']} vs "
        f"{first['stored']} (target ± 1)"
    )


if __name__ == "__main__":
    main()
