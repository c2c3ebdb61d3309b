"""A sandbox batch on a local 3-node Ray cluster: stored once, polite, and how close to the bound.

Starts a ``ray.cluster_utils.Cluster`` (a head and two worker nodes on 127.0.0.1, one CPU each,
no dashboard) and the sandbox web, runs ``--works`` works with ``RayEngine``, and reports the
makespan, the server-side window violations (requests the sandbox refused as over a host's
rate), stored and wrong-bytes counts, the politeness lower bound (max over hosts of the
requests it served ÷ its rate) and the cost of one limiter call (a reservation round trip).

    .venv/bin/python bench/bench_cluster.py [--works 2000] [--nodes 3] [--shard-size 50]
        [--rate-scale K] [--engine ray|local] [--log FILE] [--keep DIR] [--sandbox-in-driver]

``--rate-scale K`` divides every host's and API's rate by K: on a small machine the batch at
the tests' rates is bound by the CPU, at K = 4 it is bound by politeness, which is what the
makespan ÷ lower bound figure is about. ``--engine local`` runs the same batch in one process
(no cluster) for reference.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep every node on loopback

import ray
from ray.cluster_utils import Cluster

from oafetch.demo import demo_config
from oafetch.downloader import Downloader
from oafetch.engines.ray_engine import RayEngine
from oafetch.engines.shared_limiter import LimiterService
from oafetch.sandbox import Corpus, Sandbox
from oafetch.works import parse_work

RATES = {
    "unpaywall": "40/s",
    "crossref": "40/s",
    "openalex": "40/s",
    "arxiv_api": "5/s",
    "arxiv": "5/s",
    "*": "20/s",
}
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024 * 1024}


@dataclass(frozen=True)
class _Rate:
    per_second: float
    text: str

    def __str__(self) -> str:
        return self.text


class SandboxProcess:
    """The sandbox web served by a process of its own (the default; ``--sandbox-in-driver``
    serves it from the driver's process).

    In the driver's process, the sandbox's request handlers share one interpreter lock with
    the driver's own work (results, shard telemetry appended to the store): a handler held up
    there stamps a request later than it arrived, and two requests a full interval apart on
    the wire can look closer to the server's clock. On its own, the servers see what a remote
    host would. Offers what the benchmark reads of a :class:`Sandbox`.
    """

    def __init__(self, works: int, rates: dict[str, float], crawl_delay: float) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_sandbox, args=(child, works, rates, crawl_delay), daemon=True
        )
        self._process.start()
        if not self._conn.poll(120):
            raise SystemExit("the sandbox's process did not start (see its traceback above)")
        self.base_urls, self._policies, self.rates, self.services, self.works = self._conn.recv()

    def rate_policies(self) -> dict[str, str]:
        return dict(self._policies)

    def clear_log(self) -> None:
        self._conn.send("clear")
        self._conn.recv()

    def requests(self) -> list[dict[str, Any]]:
        self._conn.send("log")
        return list(self._conn.recv())

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(30)


def _serve_sandbox(conn: Any, works: int, rates: dict[str, float], crawl_delay: float) -> None:
    corpus = Corpus(seed=7, n_works=works)
    with Sandbox(corpus=corpus, rates=rates, arxiv_crawl_delay=crawl_delay) as sandbox:
        rates = {s: _Rate(r.per_second, str(r)) for s, r in sandbox.rates.items()}
        fields = ("identifier", "behaviour", "variant", "expected_obtainable", "expected_sha256")
        works = [SimpleNamespace(**{f: getattr(w, f) for f in fields}) for w in sandbox.works]
        conn.send(
            (sandbox.base_urls, sandbox.rate_policies(), rates, list(sandbox.services), works)
        )
        while (command := conn.recv()) != "stop":
            if command == "clear":
                sandbox.clear_log()
                conn.send(None)
            elif command == "log":
                conn.send(sandbox.requests())


def reservation_cost(config: object, calls: int = 2000) -> list[float]:
    """Seconds per limiter round trip (driver → actor → driver), one call at a time."""
    actor = ray.remote(LimiterService).options(num_cpus=0, max_concurrency=64).remote(config)
    ray.get(actor.next_free_in.remote("warm.test"))
    times = []
    for i in range(calls):
        start = time.perf_counter()
        ray.get(actor.reserve.remote(f"h{i % 50}.test", None, False))
        times.append(time.perf_counter() - start)
    ray.kill(actor)
    return times


def _busy(log: list[dict[str, Any]], service: str, per_second: float) -> tuple[float, ...]:
    """When the busiest host was asked: (first request after the run's first, span of its
    requests, idle time within it, last request before the run's last)."""
    every = sorted(float(e["ts"]) for e in log)
    times = sorted(float(e["ts"]) for e in log if e["service"] == service)
    gap = 2 / per_second
    idle = sum(b - a - 1 / per_second for a, b in itertools.pairwise(times) if b - a > gap)
    return times[0] - every[0], times[-1] - times[0], idle, every[-1] - times[-1]


def _per_service(sandbox: Any) -> dict[str, float]:
    """Each sandbox service's rate in requests per second."""
    return {s: sandbox.rates[s].per_second for s in sandbox.services}


def _scaled(rate: str, k: float) -> float:
    """Requests per second of ``rate`` (``"N/s"``) divided by ``k``."""
    return float(rate.removesuffix("/s")) / k


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate-scale", type=float, default=1.0, help="divide every rate by K")
    parser.add_argument("--engine", choices=("ray", "local"), default="ray")
    parser.add_argument("--log", type=Path, help="write the sandbox's request log here (JSON)")
    parser.add_argument("--keep", type=Path, help="copy the run's output directory here")
    parser.add_argument(
        "--sandbox-in-driver",
        action="store_true",
        help="serve the sandbox from the driver's process (earlier figures; its handlers then "
        "wait for the driver's work, and stamp requests late)",
    )
    args = parser.parse_args()
    rates = {key: _scaled(rate, args.rate_scale) for key, rate in RATES.items()}
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(**NODE)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        crawl_delay = 0.2 * args.rate_scale
        web: Any = (
            Sandbox(
                corpus=Corpus(seed=7, n_works=args.works),
                rates=rates,
                arxiv_crawl_delay=crawl_delay,
            )
            if args.sandbox_in_driver
            else SandboxProcess(args.works, rates, crawl_delay)
        )
        with web as sandbox:
            ids = [w.identifier for w in sandbox.works]
            with tempfile.TemporaryDirectory() as tmp:
                config = demo_config(
                    sandbox, Path(tmp) / "out", workers=args.workers, cache={"enabled": False}
                )
                costs = reservation_cost(config)
                sandbox.clear_log()
                started = time.monotonic()
                if args.engine == "local":
                    with Downloader(config, resume=False) as dl:
                        results = list(dl.run(ids))
                    nodes = {"local": 1}
                else:
                    with RayEngine(config, shard_size=args.shard_size) as engine:
                        results = list(engine.run(ids))
                        nodes = dict(engine.collector.nodes)
                makespan = time.monotonic() - started
                if args.keep:
                    shutil.copytree(Path(tmp) / "out", args.keep, dirs_exist_ok=True)
            log = sandbox.requests()
            if args.log:
                args.log.write_text(
                    json.dumps({"rates": _per_service(sandbox), "log": log}, default=str)
                )
            expected = {parse_work(w.identifier).work_id: w for w in sandbox.works}
            stored = Counter(r.work_id for r in results if r.ok)
            wrong = sum(
                1 for r in results if r.ok and r.sha256 != expected[r.work_id].expected_sha256
            )
            missed_works = [
                wid for wid, w in expected.items() if w.expected_obtainable and wid not in stored
            ]
            missed = len(missed_works)
            by_id = {r.work_id: r for r in results}
            for wid in missed_works:  # why, for each obtainable work not stored
                r, w = by_id.get(wid), expected[wid]
                why = f"{r.reason}: {r.message}" if r is not None else "no result"
                print(f"missed {wid} ({w.behaviour}/{w.variant}): {why}")
            per_host = Counter(e["service"] for e in log)
            lower = max(n / sandbox.rates[s].per_second for s, n in per_host.items())
            slowest = max(per_host, key=lambda s: per_host[s] / sandbox.rates[s].per_second)
            busiest = _busy(log, slowest, sandbox.rates[slowest].per_second)
    finally:
        ray.shutdown()
        cluster.shutdown()
    costs.sort()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"| machine | {machine}, Python {platform.python_version()}, Ray {ray.__version__} |")
    print(
        f"| cluster | {args.nodes} nodes, 1 CPU each, shards of {args.shard_size}, "
        f"{args.workers} threads per shard, engine {args.engine}, rates ÷ {args.rate_scale:g} |"
    )
    print(f"| works | {len(results)} (shards per node: {sorted(nodes.values())}) |")
    twice = sum(1 for n in stored.values() if n > 1)
    print(
        f"| stored once, byte-identical | {len(stored)} (wrong bytes {wrong}, "
        f"obtainable missed {missed}, stored twice {twice}) |"
    )
    print(f"| requests served | {len(log)} |")
    print(f"| server-side rate violations | {sum(1 for e in log if e.get('throttled'))} |")
    print(f"| makespan | {makespan:.1f} s |")
    print(
        f"| lower bound | {lower:.1f} s ({slowest}: {per_host[slowest]} requests "
        f"at {sandbox.rates[slowest]}) |"
    )
    print(f"| makespan ÷ lower bound | {makespan / lower:.2f} |")
    print(
        f"| {slowest} | first request {busiest[0]:.1f} s after the run's first, busy "
        f"{busiest[1]:.1f} s, idle {busiest[2]:.1f} s of it (gaps over twice its interval), "
        f"last request {busiest[3]:.1f} s before the run's last |"
    )
    print(
        f"| limiter round trip | median {statistics.median(costs) * 1e3:.2f} ms, "
        f"p95 {costs[int(len(costs) * 0.95)] * 1e3:.2f} ms |"
    )


if __name__ == "__main__":
    main()
