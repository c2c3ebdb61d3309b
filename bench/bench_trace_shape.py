"""The trace shape of a sandbox batch: traces, and spans per work trace.

    python bench/bench_trace_shape.py [--works 200] [--seed 11]

Runs a batch against the sandbox web with telemetry on and reads ``spans.jsonl``: how many
traces, how many of them are work traces, and the spans per work trace (p50, p95, max).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

from oafetch import Downloader
from oafetch.demo import demo_config
from oafetch.sandbox import Corpus, Sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Sandbox(corpus=Corpus(seed=args.seed, n_works=args.works)) as sandbox,
    ):
        out = Path(tmp) / "out"
        config = demo_config(
            sandbox, out, workers=8, cache={"enabled": False}, telemetry={"enabled": True}
        )
        with Downloader(config, resume=False) as dl:
            list(dl.run([w.identifier for w in sandbox.works]))
        records = [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]
    per_trace = collections.Counter(r["trace_id"] for r in records)
    works = {r["trace_id"] for r in records if r["name"] == "oafetch.work"}
    sizes = sorted(per_trace[t] for t in works)
    print(
        f"{args.works} works: {len(records)} spans in {len(per_trace)} traces, "
        f"{len(works)} work traces; spans per work trace p50 {sizes[len(sizes) // 2]}, "
        f"p95 {sizes[int(len(sizes) * 0.95)]}, max {sizes[-1]}"
    )


if __name__ == "__main__":
    main()
