"""State memory: peak RSS of a downloading batch, and the start of a resume, at scale.

1. ``download``: a threaded loopback server (its own process) serves ``N`` tiny PDF-like files;
   ``oafetch`` downloads all of them in a child process (8 workers, politeness and cache off,
   full telemetry, fsync on). Measured: the child's peak RSS and wall time.
2. ``resume``: an output directory whose ``manifest.jsonl`` holds ``N`` stored works (synthetic
   rows; each names one small file); a child opens a ``Downloader`` on it with resume on and runs
   10 new works. Measured: seconds until the first new work is done, with ``state.sqlite``
   absent (first open: indexes the whole manifest) and present (the usual resume), and peak RSS.

    .venv/bin/python bench/bench_state_memory.py download 10000 [--compare OLD_SRC]
    .venv/bin/python bench/bench_state_memory.py resume 1000000 [--compare OLD_SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_cpu_per_file import SERVER

PY = sys.executable

DOWNLOAD = r"""
import json, resource, sys, time
import oafetch
def urls():
    with open(sys.argv[1]) as fh:
        for line in fh:
            yield line.strip()
config = oafetch.Config(
    out_dir=sys.argv[2], workers=8, mailto="bench@oafetch.test",
    politeness={"enabled": False}, download={"fsync": True, "min_pdf_bytes": 100},
    telemetry={"enabled": True}, cache={"enabled": False},
)
t0 = time.perf_counter()
bad = 0
with oafetch.Downloader(config, resume=True) as dl:
    for r in dl.run(urls()):
        bad += not r.ok
print(json.dumps({"wall_s": time.perf_counter() - t0, "bad": bad,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RESUME = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import oafetch
config = oafetch.Config(
    out_dir=sys.argv[2], workers=8, mailto="bench@oafetch.test",
    politeness={"enabled": False}, download={"fsync": True, "min_pdf_bytes": 100},
    telemetry={"enabled": True}, cache={"enabled": False},
)
urls = [l.strip() for l in open(sys.argv[1])]
first = None
with oafetch.Downloader(config, resume=True) as dl:
    opened = time.perf_counter() - t0
    for r in dl.run(urls):
        assert r.ok, r
        first = first or time.perf_counter() - t0
print(json.dumps({"open_s": opened, "first_s": first,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, urls: Path, out: Path, src: Path | None) -> dict[str, float]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    done = subprocess.run(
        [PY, "-c", code, str(urls), str(out)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _synthetic_manifest(out: Path, rows: int) -> None:
    """``rows`` stored works, each pointing at one small real file (resume checks its size)."""
    (out / "pdf").mkdir(parents=True)
    body = b"%PDF-1.7\n" + b"0" * 4000 + b"\n%%EOF\n"
    (out / "pdf" / "one.pdf").write_bytes(body)
    with (out / "manifest.jsonl").open("w") as fh:
        for i in range(rows):
            row = {
                "ts": 1.0,
                "run_id": "bench",
                "work_id": f"doi:10.9999/bench.{i}",
                "artifact_id": f"{i:012x}",
                "resolver": "direct",
                "url": f"http://127.0.0.1:1/bench/{i}.pdf",
                "outcome": "success",
                "ok": True,
                "reason": "ok",
                "path": "pdf/one.pdf",
                "content_type": "application/pdf",
                "bytes": len(body),
                "sha256": f"{i:064x}",
                "dedupe_action": "stored",
                "dry_run": False,
            }
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("download", "resume"))
    parser.add_argument("works", type=int)
    parser.add_argument("--compare", type=Path, help="another oafetch src tree, run first")
    args = parser.parse_args()
    server = subprocess.Popen([PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    trees: dict[str, Path | None] = {"this tree": None}
    if args.compare:
        trees = {"compare": args.compare, **trees}
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for label, src in trees.items():
            with tempfile.TemporaryDirectory(prefix="oafetch-state-") as name:
                tmp = Path(name)
                out = tmp / "out"
                urls = tmp / "urls.txt"
                if args.mode == "download":
                    with urls.open("w") as fh:
                        for i in range(args.works):
                            fh.write(f"http://127.0.0.1:{port}/f/{i}.pdf\n")
                    r = _child(DOWNLOAD, urls, out, src)
                    print(
                        f"{label}: download {args.works} works: peak RSS {r['peak_mb']:.0f} MB, "
                        f"{r['wall_s']:.0f} s, {r['bad']} failed",
                        flush=True,
                    )
                    continue
                started = time.perf_counter()
                _synthetic_manifest(out, args.works)
                made = time.perf_counter() - started
                for attempt in ("first open", "index present"):
                    urls.write_text(
                        "".join(
                            f"http://127.0.0.1:{port}/new/{attempt[0]}{i}.pdf\n" for i in range(10)
                        )
                    )
                    r = _child(RESUME, urls, out, src)
                    print(
                        f"{label}: resume over {args.works} rows ({attempt}; manifest made in "
                        f"{made:.0f} s): opened in {r['open_s']:.1f} s, first new work done at "
                        f"{r['first_s']:.1f} s, peak RSS {r['peak_mb']:.0f} MB",
                        flush=True,
                    )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
