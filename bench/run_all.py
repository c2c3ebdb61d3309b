"""Run every benchmark (``make bench``) and save each one's Markdown output in bench/results/.

The figures and the commands that produced them are copied into docs/BENCHMARKS.md by hand,
with the machine's load at the time: benchmarks are measurements, never test assertions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHES = [
    ("politeness", ["bench_politeness.py"]),
    ("throughput", ["bench_throughput.py", "--rounds", "3"]),
    ("telemetry", ["bench_telemetry.py"]),
    ("memory", ["bench_memory.py"]),
    ("analytics", ["bench_analytics.py"]),
    ("landing_parse", ["bench_landing_parse.py", "100"]),
    ("learned_order", ["bench_learned_order.py"]),
]


def main() -> int:
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    only = set(sys.argv[1:])
    failed = 0
    for name, args in BENCHES:
        if only and name not in only:
            continue
        command = [sys.executable, str(HERE / args[0]), *args[1:]]
        print(f"== {name}: {' '.join(command)}  (load {os.getloadavg()[0]:.1f})", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        text = proc.stdout + (
            f"\n(exit {proc.returncode})\n{proc.stderr[-3000:]}" if proc.returncode else ""
        )
        (results / f"{name}.md").write_text(text)
        print(text)
        print(f"== {name} took {time.perf_counter() - started:.0f} s", flush=True)
        failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
