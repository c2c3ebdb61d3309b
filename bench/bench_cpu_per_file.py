"""CPU milliseconds per file: oafetch's full pipeline on loopback, telemetry on, fsync on.

A small threaded HTTP/1.1 server (its own process) serves ``--files`` PDF-like files of a few
KB; ``oafetch`` downloads all of them in a child process (8 workers, politeness off, cache off,
full telemetry to SQLite + JSONL, fsync on). Measured: the child's user + system CPU time
divided by the number of files (the server's CPU is not counted), and its wall time.

``--compare SRC`` runs a second tree of oafetch (another checkout's ``src``) interleaved with
this one, round by round, so both see the same machine load; medians of ``--rounds``.

    .venv/bin/python bench/bench_cpu_per_file.py --files 2000 --rounds 3 [--compare /tmp/old/src]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PY = sys.executable

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

body = (b"%PDF-1.7\n" + b"0" * 4000 + b"\n%%EOF\n")

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/robots.txt":
            data, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
        else:
            data, ctype = body + self.path.encode(), "application/pdf"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def loopback_config(out: str) -> Any:
    """The configuration of the in-process loopback batches (``bench_rss_*``): 8 workers,
    politeness and cache off, full telemetry, fsync off."""
    import oafetch

    return oafetch.Config(
        out_dir=out,
        workers=8,
        mailto="bench@oafetch.test",
        politeness={"enabled": False},
        download={"fsync": False, "min_pdf_bytes": 100},
        telemetry={"enabled": True},
        cache={"enabled": False},
    )


CHILD = r"""
import json, resource, sys, time
import oafetch
urls = [l.strip() for l in open(sys.argv[1])]
config = oafetch.Config(
    out_dir=sys.argv[2], workers=8, mailto="bench@oafetch.test",
    politeness={"enabled": False}, download={"fsync": True, "min_pdf_bytes": 100},
    telemetry={"enabled": True}, cache={"enabled": False},
)
t0 = time.perf_counter(); r0 = resource.getrusage(resource.RUSAGE_SELF)
with oafetch.Downloader(config, resume=False) as dl:
    bad = sum(1 for r in dl.run(urls) if not r.ok)
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"cpu_s": cpu, "wall_s": time.perf_counter() - t0, "bad": bad,
                  "file": oafetch.__file__}))
"""


def one(src: Path | None, urls: Path, tmp: Path) -> dict[str, float]:
    out = tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    done = subprocess.run(
        [PY, "-c", CHILD, str(urls), str(out)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["bad"]:
        raise SystemExit(f"{result['bad']} files failed")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another oafetch src tree, run interleaved")
    args = parser.parse_args()
    server = subprocess.Popen([PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="oafetch-cpu-") as name:
            tmp = Path(name)
            urls = tmp / "urls.txt"
            urls.write_text(
                "".join(f"http://127.0.0.1:{port}/f/{i}.pdf\n" for i in range(args.files))
            )
            trees: dict[str, Path | None] = {"this tree": None}
            if args.compare:
                trees = {"compare": args.compare, **trees}
            seen: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
            for round_ in range(args.rounds):
                for label, src in trees.items():
                    r = one(src, urls, tmp)
                    seen[label].append(r)
                    print(
                        f"round {round_ + 1} {label}: {1000 * r['cpu_s'] / args.files:.2f} ms "
                        f"CPU/file, {r['wall_s']:.1f} s wall ({r['file']})",
                        flush=True,
                    )
                    time.sleep(1)
            for label, rows in seen.items():
                cpu = statistics.median(1000 * r["cpu_s"] / args.files for r in rows)
                wall = statistics.median(r["wall_s"] for r in rows)
                print(f"{label}: median {cpu:.2f} ms CPU per file, {wall:.1f} s wall")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
