"""Politeness makespan: how close a batch over many rate-limited hosts gets to its lower bound.

2,000 works over 30 hosts with different rates, one slow host holding 10 % of the works. Lower
bound = max over hosts of (requests to the host ÷ its rate). Reports makespan ÷ lower bound and
the server-side violations (requests that arrived sooner than the host's rate allows).

    .venv/bin/python bench/bench_politeness.py [--works 2000] [--hosts 30]
        [--engine local|processes|ray] [--nodes 3] [--shard-size 100]

``--engine ray`` runs the batch on a local Ray cluster of ``--nodes`` nodes (1 CPU each, bound
to 127.0.0.1, no dashboard) with the cluster engine; ``--engine processes`` on ``--nodes``
local processes. Every host's rate then holds cluster-wide through the shared limiters.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import multihost

import oafetch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--engine", choices=("local", "processes", "ray"), default="local")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=100)
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
            results, makespan = run(config, urls, args)
        ok = sum(r.ok for r in results)
    finally:
        stats = finish()
    violations = sum(v for _, v in stats)
    for h, (times, v) in enumerate(stats):
        if v:
            times = sorted(times)
            n = max(1, round(rates[h]))
            tightest = min((b - a for a, b in zip(times, times[n:], strict=False)), default=0.0)
            print(
                f"host {h} ({rates[h]:g}/s): {v} over its window; tightest {n + 1} requests "
                f"span {tightest * 1000:.1f} ms"
            )
    slow_times = sorted(stats[0][0])
    every = sorted(t for times, _ in stats for t in times)
    if slow_times and every:
        print(
            f"run's first request at monotonic {every[0]:.3f}; "
            f"slow host: first request {slow_times[0] - every[0]:.1f} s after the run's first, "
            f"busy {slow_times[-1] - slow_times[0]:.1f} s for {len(slow_times)} requests; "
            f"run's requests span {every[-1] - every[0]:.1f} s"
        )
    print(f"| machine | {platform.machine()}, {platform.python_version()}, {_cpus()} CPUs |")
    engine = args.engine if args.engine == "local" else f"{args.engine} x {args.nodes}"
    print(f"| engine | {engine} (shards of {args.shard_size}) |")
    print(f"| works / hosts / workers | {args.works} / {args.hosts} / {args.workers} |")
    print(f"| stored | {ok} of {len(urls)} |")
    print(f"| lower bound | {lower:.1f} s (slow host: {per_host[0]} requests at {slow_rate:g}/s) |")
    print(f"| makespan | {makespan:.1f} s |")
    print(f"| makespan ÷ lower bound | **{makespan / lower:.3f}** (target ≤ 1.15) |")
    print(f"| server-side rate violations | {violations} |")


def run(
    config: oafetch.Config, urls: list[str], args: argparse.Namespace
) -> tuple[list[Any], float]:
    """The batch's results on the engine asked for, and its makespan (from the engine's start:
    a Ray cluster is up before the clock starts, as a user's cluster would be)."""
    started = time.monotonic()
    if args.engine == "local":
        with oafetch.Downloader(config, resume=False) as dl:
            return list(dl.run(urls)), time.monotonic() - started
    if args.engine == "processes":
        from oafetch.engines.process_engine import ProcessEngine

        with ProcessEngine(
            config, processes=args.nodes, resume=False, shard_size=args.shard_size
        ) as engine:
            results = list(engine.run(urls))
            last = time.monotonic() - started
        closed = time.monotonic() - started
        print(
            f"engine started at monotonic {started:.3f}; "
            f"last result {last:.1f} s, closed {closed:.1f} s"
        )
        return results, closed
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node on loopback
    import ray
    from ray.cluster_utils import Cluster

    from oafetch.engines.ray_engine import RayEngine

    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 << 20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(**node)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        started = time.monotonic()
        with RayEngine(config, resume=False, shard_size=args.shard_size) as engine:
            first = None
            results = []
            for result in engine.run(urls):
                first = first or time.monotonic() - started
                results.append(result)
            last = time.monotonic() - started
        closed = time.monotonic() - started
        print(f"first result {first:.1f} s, last {last:.1f} s, closed {closed:.1f} s")
        print(f"engine started at monotonic {started:.3f}")
        return results, closed
    finally:
        ray.shutdown()
        cluster.shutdown()


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
