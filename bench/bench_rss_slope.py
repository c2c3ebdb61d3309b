"""RSS per downloaded work once the run's bounded memories are full.

A downloading batch keeps a few bounded memories that fill as it goes (the URL → outcome map of
the fallback chain, the trace sampler's decisions, the SQLite exporter's row ids; 50,000-65,536
entries each), so RSS measured below ~65,000 works mixes their filling with any per-work
growth. This script shrinks each of them to ``--cap`` entries, so they are full after a few
thousand works, then downloads ``N`` tiny PDF-like files (a threaded loopback server in its own
process; 8 workers, politeness and cache off, full telemetry) and prints RSS every ``--every``
works: what is left after the caches fill is the per-work slope a 10⁶-work run would have.

    .venv/bin/python bench/bench_rss_slope.py 30000 [--cap 1000] [--every 2500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_cpu_per_file import SERVER, loopback_config


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("works", type=int)
    parser.add_argument("--cap", type=int, default=1000, help="entries of each bounded memory")
    parser.add_argument("--every", type=int, default=2500, help="works between RSS samples")
    args = parser.parse_args()

    import oafetch
    import oafetch.fallback as fallback
    import oafetch.fallback_state as fallback_state
    import oafetch.telemetry.sampling as sampling
    import oafetch.telemetry.sqlite_exporter as sqlite_exporter

    sampling.MAX_TRACES = args.cap
    sqlite_exporter._ROWID_MEMORY = args.cap
    fallback_state.MAX_REMEMBERED_URLS = args.cap
    fallback.MAX_REMEMBERED_URLS = args.cap  # type: ignore[attr-defined]

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())

    def urls():  # type: ignore[no-untyped-def]
        for i in range(args.works):
            yield f"http://127.0.0.1:{port}/f{i}.pdf"

    samples: list[tuple[int, float]] = []
    try:
        with tempfile.TemporaryDirectory() as out:
            config = loopback_config(out)
            with oafetch.Downloader(config, resume=True) as dl:
                for done, _ in enumerate(dl.run(urls()), 1):
                    if done % args.every == 0:
                        samples.append((done, round(rss_mb(), 1)))
                        print(f"{done:>9,} works  RSS {samples[-1][1]:7.1f} MB", flush=True)
    finally:
        server.kill()
    if len(samples) >= 3:
        (n0, r0), (n1, r1) = samples[len(samples) // 3], samples[-1]
        per_work = (r1 - r0) * 1024 * 1024 / (n1 - n0)
        print(json.dumps({"from": n0, "to": n1, "bytes_per_work": round(per_work, 1)}))


if __name__ == "__main__":
    main()
