"""Files per second and CPU per file with ``--processes 1`` and ``N``, and the shared limiter's
cost per request.

Tiny 4 KB PDF-like files, 8 download threads per process, full telemetry, fsync on unless
``--no-fsync``, served by a local nginx (``--server nginx``, Debian ``nginx-light``; the
threaded Python server of ``bench_cpu_per_file.py`` with ``--server python`` caps a run at
~175 files/s whatever the client does). Politeness is on with a rate high enough never to
wait, so every send asks the limiter: in one process its own, with ``--processes N`` the
driver's limiter services over a Unix socket. CPU is user + system of the run's process and
all its worker processes. Rounds alternate the modes; medians.

    .venv/bin/python bench/bench_processes.py --files 2000 --rounds 3 --processes 2 [--no-fsync]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_cpu_per_file import SERVER

PY = sys.executable

CHILD = r"""
import json, resource, sys, time
import oafetch
from oafetch.engines.process_engine import ProcessEngine
urls = [l.strip() for l in open(sys.argv[1])]
processes = int(sys.argv[3])
config = oafetch.Config(
    out_dir=sys.argv[2], workers=8, mailto="bench@oafetch.test", processes=processes,
    politeness={"default_rate": "100000/s", "enabled": sys.argv[6] == "1"},
    robots={"enabled": False},
    download={"fsync": sys.argv[5] == "1", "min_pdf_bytes": 100},
    telemetry={"enabled": True}, cache={"enabled": False},
)
t0 = time.perf_counter()
if processes == 1:
    with oafetch.Downloader(config, resume=False) as dl:
        bad = sum(1 for r in dl.run(urls) if not r.ok)
else:
    shard_size = int(sys.argv[4])
    with ProcessEngine(config, processes=processes, resume=False, shard_size=shard_size) as engine:
        bad = sum(1 for r in engine.run(urls) if not r.ok)
wall = time.perf_counter() - t0
cpu = 0.0
for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
    r = resource.getrusage(who)
    cpu += r.ru_utime + r.ru_stime
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "bad": bad}))
"""


def _limiter_client(address: str, authkey: bytes, calls: int, queue: object) -> None:
    from oafetch.engines import process_engine

    proxies = process_engine._connect_limiters(address, authkey, 1)
    proxies[0].reserve("example.org", None, False)  # connect
    t0 = time.perf_counter()
    for _ in range(calls):
        proxies[0].reserve("example.org", None, False)
    queue.put((time.perf_counter() - t0) / calls)  # type: ignore[attr-defined]


def limiter_cost(calls: int = 5000) -> float:
    """Seconds per ``reserve`` round trip from another process to the driver's services."""
    from oafetch import Config
    from oafetch.engines.process_engine import ProcessEngine

    with tempfile.TemporaryDirectory() as out:
        config = Config(
            out_dir=out,
            politeness={"default_rate": "1000000/s"},
            telemetry={"enabled": False},
        )
        with ProcessEngine(config, processes=2, limiters=1) as engine:
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            assert engine._address is not None
            worker = ctx.Process(
                target=_limiter_client, args=(engine._address, engine._authkey, calls, queue)
            )
            worker.start()
            per_call = float(queue.get(timeout=300))
            worker.join()
    return per_call


class _PythonServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([PY, "-c", SERVER], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def stop(self) -> None:
        self.proc.kill()


def serve(kind: str, tmp: Path, files: int) -> Any:
    """A server of ``files`` tiny PDF-like files at ``/f/<i>.pdf`` (``.base``, ``.stop()``)."""
    if kind == "python":
        return _PythonServer()
    from nginx_files import Nginx

    tmp.chmod(0o755)  # nginx's workers run as another user
    www = tmp / "www" / "f"
    www.mkdir(parents=True)
    for i in range(files):
        (www / f"{i}.pdf").write_bytes(b"%PDF-1.7\n" + b"0" * 4000 + f"\n{i}\n%%EOF\n".encode())
    return Nginx(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--server", choices=("nginx", "python"), default="nginx")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--no-fsync", action="store_true", help="files not fsynced (CPU-bound)")
    parser.add_argument(
        "--no-politeness",
        action="store_true",
        help="no limiter (one host is otherwise held to one send per ~5 ms gate margin)",
    )
    args = parser.parse_args()
    print(f"limiter: {limiter_cost() * 1e6:.0f} µs per reserve round trip", flush=True)
    seen: dict[int, list[dict[str, float]]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory(prefix="oafetch-procs-") as name:
        tmp = Path(name)
        stop = serve(args.server, tmp, args.files)
        try:
            urls = tmp / "urls.txt"
            urls.write_text("".join(f"{stop.base}/f/{i}.pdf\n" for i in range(args.files)))
            for _ in range(args.rounds):
                for processes in seen:
                    out = tmp / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    done = subprocess.run(
                        [
                            PY,
                            "-c",
                            CHILD,
                            str(urls),
                            str(out),
                            str(processes),
                            str(args.shard_size),
                            "0" if args.no_fsync else "1",
                            "0" if args.no_politeness else "1",
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if done.returncode != 0:
                        raise SystemExit(f"child failed: {done.stderr[-2000:]}")
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    if result["bad"]:
                        raise SystemExit(f"{result['bad']} files failed")
                    seen[processes].append(result)
                    print(processes, result, flush=True)
        finally:
            stop.stop()
    print("| processes | files/s | CPU ms per file | wall s (rounds) |")
    print("|---|---|---|---|")
    for processes, results in seen.items():
        wall = statistics.median(r["wall_s"] for r in results)
        cpu = statistics.median(r["cpu_s"] for r in results)
        rounds = ", ".join(f"{r['wall_s']:.1f}" for r in results)
        print(
            f"| {processes} | {args.files / wall:.0f} | {1000 * cpu / args.files:.2f} "
            f"| {wall:.1f} ({rounds}) |"
        )


if __name__ == "__main__":
    main()
