"""RSS of a long downloading batch on ``--processes N``: the driver and each worker, sampled.

Downloads ``works`` tiny PDF-like files from a threaded loopback server (its own process) with
the process engine (politeness and cache off, full telemetry, fsync off, shards of
``--shard-size``) and prints, every ``--every`` works, the RSS of the driver and of each worker
process (from ``/proc``). With state on disk (the state store) and every per-work memory
bounded, both should stay flat however long the batch runs.

    .venv/bin/python bench/bench_rss_processes.py 1000000 [--processes 2] [--every 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_cpu_per_file import SERVER, loopback_config


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the pool's workers, its resource tracker)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("works", type=int)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--out", type=Path, help="output directory (default: a temporary one)")
    args = parser.parse_args()

    from oafetch.engines.process_engine import ProcessEngine

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())

    def urls() -> Iterator[str]:
        for i in range(args.works):
            yield f"http://127.0.0.1:{port}/f{i}.pdf"

    me = os.getpid()
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(dir=args.out) as out:
            config = loopback_config(out)
            with ProcessEngine(
                config, processes=args.processes, resume=False, shard_size=args.shard_size
            ) as engine:
                for done, _ in enumerate(engine.run(urls()), 1):
                    if done % args.every == 0:
                        workers = sorted(
                            (rss_mb(p) for p in children(me) if p != server.pid), reverse=True
                        )
                        sample = {
                            "works": done,
                            "s": round(time.monotonic() - started),
                            "driver_mb": round(rss_mb(me), 1),
                            "workers_mb": [round(w, 1) for w in workers[: args.processes]],
                        }
                        samples.append(sample)
                        print(json.dumps(sample), flush=True)
                last = time.monotonic() - started
            closed = time.monotonic() - started
            print(
                json.dumps(
                    {
                        "last_result_s": round(last),
                        "closed_s": round(closed),  # summary, the run's telemetry summary row
                        "telemetry_sqlite_mb": round(_mb(Path(out) / "telemetry.sqlite"), 1),
                        "telemetry_shards_mb": round(_mb(Path(out) / "telemetry-shards"), 1),
                        "spans_jsonl_mb": round(_mb(Path(out) / "spans.jsonl"), 1),
                    }
                ),
                flush=True,
            )
    finally:
        server.kill()
    print(json.dumps({"done": len(samples), "wall_s": round(time.monotonic() - started)}))


def _mb(path: Path) -> float:
    """Size of a file, or of every file under a directory, in MB."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6 if path.exists() else 0.0


if __name__ == "__main__":
    main()
