"""Raw throughput on loopback, limits off: oafetch's full pipeline vs aria2c, curl and httpx.

Files from a local nginx (Debian ``nginx-light``, one worker, sendfile): ``--size pdf`` (the
default) 2,000 PDF-like files of log-normal sizes (median ~300 KB, 20 KB to 5 MB), ``--size tiny``
files of 4 KB each. Every client runs as a whole command in its own process (oafetch as
``oafetch run``, as a user runs it: interpreter start and imports included), writes to the same
disk (``--tmpfs``: /dev/shm, so only the CPU counts), and its output directory is emptied
between runs; clients alternate round by round. For each: wall time, files/s, MB/s and **CPU
ms per file** (user + system of the command and every process it waited for, from
``getrusage(RUSAGE_CHILDREN)``). Read ratios, not absolute figures: the machine is shared.

Clients: oafetch ``--processes 1`` with fsync on/off by telemetry on/off; oafetch with the
default ``--processes auto`` (one process per core for a batch this long), fsync on/off,
telemetry on; a plain ``httpx.Client`` thread pool (no verification, no telemetry: the floor of
httpx itself); ``aria2c -j16`` (fsyncs each file) and ``curl -Z`` (no fsync) when installed.

    .venv/bin/python bench/bench_throughput.py [--files 2000] [--rounds 3] [--size pdf|tiny]
        [--tmpfs] [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import nginx_files

TINY_BYTES = 4096
OAFETCH = [sys.executable, "-m", "oafetch.cli"]

#: a command (given the URL list file and the output directory)
Command = Callable[[Path, Path], list[str]]


def oafetch_command(
    *, fsync: bool, telemetry: bool, workers: int, processes: str, shard_size: int | None = None
) -> Command:
    def command(listing: Path, out: Path) -> list[str]:
        config = out.parent / f"oafetch-{fsync}-{telemetry}.toml"
        config.write_text(
            "[politeness]\nenabled = false\n[cache]\nenabled = false\n"
            f"[telemetry]\nenabled = {str(telemetry).lower()}\n"
            f"[download]\nfsync = {str(fsync).lower()}\nmin_pdf_bytes = 100\n"
        )
        return [
            *OAFETCH,
            "run",
            str(listing),
            "--out",
            str(out),
            "--config",
            str(config),
            "--workers",
            str(workers),
            "--processes",
            processes,
            "--no-resume",
            "--quiet",
            *(["--shard-size", str(shard_size)] if shard_size else []),
        ]

    return command


def httpx_pool_main(listing: Path, out: Path, threads: int = 16) -> None:
    """The plain httpx pool, run as its own command (``--httpx-pool LIST OUT``)."""
    import httpx

    urls = listing.read_text().split()
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


def _curl(listing: Path, out: Path) -> list[str]:
    config = out.parent / "curl.cfg"
    config.write_text(
        "".join(
            f'url = "{u}"\noutput = "{out}/{u.rsplit("/", 1)[1]}"\n'
            for u in listing.read_text().split()
        )
    )
    return ["curl", "-s", "-Z", "--parallel-max", "16", "-K", str(config)]


def clients(workers: int, shard_sizes: list[int] | None = None) -> dict[str, Command]:
    found: dict[str, Command] = {}
    for fsync in (True, False):
        for telemetry in (True, False):
            name = (
                f"oafetch --processes 1 ({'fsync' if fsync else 'no fsync'}, "
                f"telemetry {'on' if telemetry else 'off'})"
            )
            found[name] = oafetch_command(
                fsync=fsync, telemetry=telemetry, workers=workers, processes="1"
            )
    for fsync in (True, False):
        name = f"oafetch default: auto ({'fsync' if fsync else 'no fsync'}, telemetry on)"
        found[name] = oafetch_command(
            fsync=fsync, telemetry=True, workers=workers, processes="auto"
        )
    for size in shard_sizes or ():
        found[f"oafetch default: auto, shards of {size} (fsync, telemetry on)"] = oafetch_command(
            fsync=True, telemetry=True, workers=workers, processes="auto", shard_size=size
        )
    found["httpx.Client pool, 16 threads (no verification)"] = lambda listing, out: [
        sys.executable,
        __file__,
        "--httpx-pool",
        str(listing),
        str(out),
    ]
    if shutil.which("aria2c"):
        found["aria2c -j16 (fsync)"] = lambda listing, out: [
            "aria2c",
            "-q",
            "-j16",
            "-x1",
            "-i",
            str(listing),
            "-d",
            str(out),
        ]
    if shutil.which("curl"):
        found["curl -Z --parallel-max 16 (no fsync)"] = _curl
    return found


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command and what it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--size", choices=("pdf", "tiny"), default="pdf")
    parser.add_argument("--tmpfs", action="store_true", help="outputs on /dev/shm (CPU only)")
    parser.add_argument("--only", action="append", help="clients whose name holds this")
    parser.add_argument(
        "--shard-sizes", type=int, nargs="*", help="also time auto with these --shard-size"
    )
    parser.add_argument("--data", type=Path)
    parser.add_argument("--httpx-pool", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.httpx_pool:
        httpx_pool_main(*args.httpx_pool)
        return
    data = args.data or Path(tempfile.gettempdir()) / f"oafetch-bench-{args.size}"
    files = nginx_files.make_files(
        data, args.files, size=TINY_BYTES if args.size == "tiny" else None
    )
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    server = nginx_files.Nginx(data)
    chosen = {
        name: command
        for name, command in clients(args.workers, args.shard_sizes).items()
        if not args.only or any(part in name for part in args.only)
    }
    walls: dict[str, list[float]] = {name: [] for name in chosen}
    cpus: dict[str, list[float]] = {name: [] for name in chosen}
    where = Path("/dev/shm") if args.tmpfs else data.parent
    work = Path(tempfile.mkdtemp(prefix="oafetch-bench-out-", dir=where))
    listing = work / "urls.txt"
    listing.write_text("".join(f"{server.base}/{p.name}\n" for p in files))
    try:
        for _ in range(args.rounds):
            for name, command in chosen.items():
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                subprocess.run(["sync"], check=False)
                wall, cpu = timed(command(listing, out), cwd=out)
                stored = sum(1 for p in out.rglob("*.pdf"))
                if stored != len(files):
                    raise SystemExit(f"{name}: {stored} of {len(files)} files stored")
                walls[name].append(wall)
                cpus[name].append(cpu)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(args, files, total_mb, walls, cpus)


def report(
    args: argparse.Namespace,
    files: list[Path],
    total_mb: float,
    walls: dict[str, list[float]],
    cpus: dict[str, list[float]],
) -> None:
    n = len(files)
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {n} files ({args.size}), {total_mb:.0f} MB, outputs on "
        f"{'tmpfs' if args.tmpfs else 'disk'}, rounds={args.rounds} (medians), oafetch workers="
        f"{args.workers}, load average at the end {load:.1f}"
    )
    print()
    print("| client | wall s (rounds) | files/s | MB/s | CPU ms per file |")
    print("|---|---|---|---|---|")
    med = {name: statistics.median(t) for name, t in walls.items()}
    for name, t in med.items():
        rounds = ", ".join(f"{x:.2f}" for x in walls[name])
        cpu = statistics.median(cpus[name]) * 1000 / n
        print(f"| {name} | {t:.2f} ({rounds}) | {n / t:.0f} | {total_mb / t:.0f} | {cpu:.2f} |")
    print()
    one_on = med.get("oafetch --processes 1 (fsync, telemetry on)")
    one_off = med.get("oafetch --processes 1 (fsync, telemetry off)")
    if one_on and one_off:
        print(f"- telemetry on vs off (one process, fsync): {100 * (one_on / one_off - 1):+.1f} %")
    aria = med.get("aria2c -j16 (fsync)")
    for name in (
        "oafetch --processes 1 (fsync, telemetry on)",
        "oafetch default: auto (fsync, telemetry on)",
    ):
        if aria and name in med:
            print(f"- {name} ÷ aria2c, files/s: {aria / med[name]:.2f}x")


if __name__ == "__main__":
    main()
