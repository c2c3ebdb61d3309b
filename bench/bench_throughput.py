"""Raw throughput on loopback, limits off: oafetch's full pipeline vs aria2c and a plain httpx pool.

2,000 PDF-like files (log-normal sizes, median ~300 KB, 20 KB–5 MB) from a local nginx. Every
client writes to the same disk; the output directory is emptied between runs. Compared in one
run, as ratios (the machine is shared and noisy: read ratios, not absolute figures):

* aria2c -j16 (fsyncs each file) vs oafetch with fsync (durable, full telemetry);
* curl -Z (no fsync) vs oafetch --no-fsync;
* oafetch telemetry off vs on (SQLite + JSONL): the telemetry overhead;
* a plain httpx.Client thread pool (no verification, no telemetry): the floor of httpx itself.

    .venv/bin/python bench/bench_throughput.py [--files 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import nginx_files  # noqa: E402

import oafetch  # noqa: E402


def run_oafetch(
    urls: list[str],
    out: Path,
    *,
    fsync: bool,
    telemetry: bool,
    workers: int,
    processes: int = 1,
) -> None:
    config = oafetch.Config(
        out_dir=out,
        workers=workers,
        mailto="bench@oafetch.test",
        politeness={"enabled": False},
        download={"fsync": fsync, "min_pdf_bytes": 100},
        telemetry={"enabled": telemetry},
        cache={"enabled": False},
    )
    if processes > 1:  # `oafetch run --processes N`: shards of 250 on N worker processes
        from oafetch.engines.process_engine import ProcessEngine

        with ProcessEngine(config, processes=processes, resume=False, shard_size=250) as engine:
            bad = [r for r in engine.run(urls) if not r.ok]
    else:
        with oafetch.Downloader(config, resume=False) as dl:
            bad = [r for r in dl.run(urls) if not r.ok]
    if bad:
        raise SystemExit(f"oafetch failed {len(bad)} files: {bad[0]}")


def run_httpx_pool(urls: list[str], out: Path, threads: int = 16) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with httpx.Client(limits=httpx.Limits(max_connections=threads)) as client:

        def one(url: str) -> None:
            with (
                client.stream("GET", url) as response,
                (out / url.rsplit("/", 1)[1]).open("wb") as fh,
            ):
                for chunk in response.iter_bytes(65536):
                    fh.write(chunk)

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, urls))


def run_cmd(args: list[str]) -> Callable[[list[str], Path], None]:
    def run(urls: list[str], out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        listing = out.parent / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        cmd = [a.replace("{list}", str(listing)).replace("{out}", str(out)) for a in args]
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out
        )

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--processes", type=int, default=0, help="also time --processes N")
    parser.add_argument("--tmpfs", action="store_true", help="outputs on /dev/shm (CPU only)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "oafetch-bench")
    args = parser.parse_args()
    files = nginx_files.make_files(args.data, args.files)
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    server = nginx_files.Nginx(args.data)
    urls = [f"{server.base}/{p.name}" for p in files]
    clients: dict[str, Callable[[list[str], Path], None]] = {
        "oafetch (fsync, telemetry on)": lambda u, o: run_oafetch(
            u, o, fsync=True, telemetry=True, workers=args.workers
        ),
        "oafetch (fsync, telemetry off)": lambda u, o: run_oafetch(
            u, o, fsync=True, telemetry=False, workers=args.workers
        ),
        "oafetch (no fsync, telemetry on)": lambda u, o: run_oafetch(
            u, o, fsync=False, telemetry=True, workers=args.workers
        ),
        "httpx.Client pool, 16 threads (no verification)": run_httpx_pool,
    }
    if args.processes > 1:
        clients[f"oafetch --processes {args.processes} (fsync, telemetry on)"] = lambda u, o: (
            run_oafetch(
                u, o, fsync=True, telemetry=True, workers=args.workers, processes=args.processes
            )
        )
        clients[f"oafetch --processes {args.processes} (no fsync, telemetry on)"] = lambda u, o: (
            run_oafetch(
                u, o, fsync=False, telemetry=True, workers=args.workers, processes=args.processes
            )
        )
    if shutil.which("aria2c"):
        clients["aria2c -j16"] = run_cmd(
            ["aria2c", "-q", "-j16", "-x1", "-i", "{list}", "-d", "{out}"]
        )
    if shutil.which("curl"):
        clients["curl -Z --parallel-max 16"] = _curl(urls)
    times: dict[str, list[float]] = {name: [] for name in clients}
    where = Path("/dev/shm") if args.tmpfs else args.data.parent
    work = Path(tempfile.mkdtemp(prefix="oafetch-bench-out-", dir=where))
    try:
        for _ in range(args.rounds):
            for name, client in clients.items():
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                subprocess.run(["sync"], check=False)
                started = time.perf_counter()
                client(urls, out)
                times[name].append(time.perf_counter() - started)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(files)} files, {total_mb:.0f} MB, rounds={args.rounds}, oafetch workers={args.workers}"
    )
    print()
    print("| client | wall s | files/s | MB/s |")
    print("|---|---|---|---|")
    for name, t in med.items():
        print(f"| {name} | {t:.2f} | {len(files) / t:.0f} | {total_mb / t:.0f} |")
    print()
    on = med["oafetch (fsync, telemetry on)"]
    off = med["oafetch (fsync, telemetry off)"]
    print(
        f"- telemetry overhead (on vs off, fsync): {100 * (on - off) / off:+.1f} % wall time (target ≤ 5 %)"
    )
    if "aria2c -j16" in med:
        print(
            f"- oafetch (fsync, telemetry on) ÷ aria2c files/s: {med['aria2c -j16'] / on:.2f}× (target ≥ 1.0)"
        )
        many = f"oafetch --processes {args.processes} (fsync, telemetry on)"
        if many in med:
            print(f"- {many} ÷ aria2c files/s: {med['aria2c -j16'] / med[many]:.2f}x")
    if "curl -Z --parallel-max 16" in med:
        nf = med["oafetch (no fsync, telemetry on)"]
        print(f"- oafetch (no fsync) ÷ curl files/s: {med['curl -Z --parallel-max 16'] / nf:.2f}×")
    pool = med["httpx.Client pool, 16 threads (no verification)"]
    print(
        f"- oafetch (no fsync, telemetry on) ÷ plain httpx pool files/s: {pool / med['oafetch (no fsync, telemetry on)']:.2f}×"
    )


def _curl(urls: list[str]) -> Callable[[list[str], Path], None]:
    def run(_: list[str], out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        config = out.parent / "curl.cfg"
        config.write_text(
            "".join(f'url = "{u}"\noutput = "{out}/{u.rsplit("/", 1)[1]}"\n' for u in urls)
        )
        subprocess.run(["curl", "-s", "-Z", "--parallel-max", "16", "-K", str(config)], check=True)

    return run


if __name__ == "__main__":
    main()
