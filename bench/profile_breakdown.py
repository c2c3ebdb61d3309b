"""Where the GIL-held CPU of a batch goes: py-spy samples of bench_cpu_per_file's workload.

Runs the same child as ``bench_cpu_per_file.py`` (``--files`` tiny PDF-like files from a
loopback server, 8 workers, full telemetry, fsync on) under ``py-spy record --gil`` (only
samples taken while a thread holds the GIL), then puts each sample in the category of its
innermost frame that has one (a span the SDK starts for oafetch's telemetry counts as the SDK).
py-spy is a tool, not a dependency: ``pip install py-spy`` anywhere and pass ``--py-spy``.

    .venv/bin/python bench/profile_breakdown.py --py-spy /path/to/py-spy [--files 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_cpu_per_file import CHILD, SERVER

PY = sys.executable

# (category, path fragments of a frame's file), innermost match wins; order breaks no ties
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("httpcore/h11", ("httpcore/", "h11/")),
    ("httpx", ("httpx/",)),
    ("httpx instrumentation", ("opentelemetry/instrumentation/",)),
    ("OpenTelemetry SDK/API", ("opentelemetry/",)),
    ("oafetch telemetry (processors, mapping, exporters)", ("oafetch/telemetry/",)),
    ("manifest and attempts rows", ("oafetch/manifest", "oafetch/attempts")),
    ("state store", ("oafetch/state.py",)),
    ("storage (temp, fsync, rename)", ("oafetch/storage.py",)),
    ("body: hash, classify", ("oafetch/download.py", "oafetch/classify.py", "oafetch/walls.py")),
    ("rate, robots, breakers, retry", ("oafetch/http/",)),
    ("identity check", ("oafetch/identity",)),
    ("scheduler, pool, locks", ("concurrent/futures", "threading.py", "queue.py")),
    ("oafetch other", ("oafetch/",)),
)


def categorise(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for category, fragments in CATEGORIES:
            if any(f in frame for f in fragments):
                return category
    return "other (stdlib, interpreter)"


def breakdown(raw: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[categorise(stack)] += int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", required=True, help="the py-spy executable")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--keep", type=Path, help="also keep the raw collapsed stacks here")
    args = parser.parse_args()
    server = subprocess.Popen([PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="oafetch-prof-") as name:
            tmp = Path(name)
            urls, child, raw = tmp / "urls.txt", tmp / "child.py", args.keep or tmp / "raw.txt"
            urls.write_text(
                "".join(f"http://127.0.0.1:{port}/f/{i}.pdf\n" for i in range(args.files))
            )
            child.write_text(CHILD)
            record = [
                args.py_spy,
                "record",
                "-r",
                str(args.rate),
                "--gil",
                "--full-filenames",
                "-f",
                "raw",
            ]
            command = [*record, "-o", str(raw), "--", PY, str(child), str(urls), str(tmp / "out")]
            subprocess.run(command, check=True, capture_output=True)
            counts = breakdown(raw)
    finally:
        server.terminate()
        server.wait()
    total = sum(counts.values())
    print(f"{total} GIL-held samples at {args.rate} Hz, {args.files} files")
    print("| where | share of GIL-held samples |\n|---|---|")
    for category, n in counts.most_common():
        print(f"| {category} | {100 * n / total:.1f} % |")


if __name__ == "__main__":
    main()
