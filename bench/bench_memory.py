"""Memory: peak RSS of oafetch for a 100,000-work streamed input, and for one 1 GB file.

1. Metadata-only batch: the sandbox (its own process, rates unenforced) serves a 100,000-work
   corpus; ``oafetch run ids.txt --dry-run`` (resolve, download nothing) runs in a child process
   with OpenAlex as its only source and full telemetry. Measured: the child's peak RSS (also at
   10,000 works, to show it does not grow with the input).
2. One large file: nginx serves a 1 GB and a 10 MB PDF-like file; ``oafetch fetch`` downloads
   each in a child process. Measured: peak RSS for both (it must not depend on file size).

    .venv/bin/python bench/bench_memory.py [--works 100000]
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

import nginx_files  # noqa: E402

PY = sys.executable


def child_peak_mb(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a child to completion; return (its peak RSS in MB, wall seconds)."""
    started = time.perf_counter()
    code = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
    )
    out = subprocess.run(
        [PY, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - started
    peak_kb, rc = out.stdout.strip().splitlines()[-1].split()
    if rc != "0":
        raise SystemExit(f"child failed ({rc}): {out.stdout[-1500:]} {out.stderr[-1500:]}")
    return int(peak_kb) / 1024, wall


def metadata_batch(works: int, tmp: Path) -> tuple[float, float]:
    expected = tmp / "expected.json"
    sandbox = subprocess.Popen(
        [
            PY,
            "-m",
            "oafetch.sandbox",
            "--works",
            str(works),
            "--no-rates",
            "--oversized-mib",
            "1",
            "--expected",
            str(expected),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        bases = json.loads(sandbox.stdout.readline())
        while not expected.exists():
            time.sleep(0.2)
        time.sleep(0.5)
        data = json.loads(expected.read_text())
        items = data if isinstance(data, list) else data.get("works", [])
        ids = tmp / "ids.txt"
        ids.write_text("\n".join(w["identifier"] for w in items) + "\n")
        from oafetch.sandbox_config import config_for

        settings = config_for(bases, {})
        for name, table in settings["resolvers"].items():
            table["enabled"] = name == "openalex"
        lines = [
            f'mailto = "{settings["mailto"]}"',
            "workers = 8",
            "[politeness]",
            "enabled = false",
            "[cache]",
            "enabled = false",
            "[robots]",
            "enabled = false",
            "[telemetry]",
            "enabled = true",
        ]
        for name, table in settings["resolvers"].items():
            lines.append(f"[resolvers.{name}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in table.items())
        config = tmp / "oafetch.toml"
        config.write_text("\n".join(lines) + "\n")
        out = tmp / f"out-{works}"
        return child_peak_mb(
            [
                PY,
                "-m",
                "oafetch.cli",
                "run",
                str(ids),
                "--dry-run",
                "--quiet",
                "--out",
                str(out),
                "--config",
                str(config),
            ]
        )
    finally:
        sandbox.terminate()
        sandbox.wait(30)


def big_file(size: int, tmp: Path, server: nginx_files.Nginx) -> tuple[float, float]:
    name = f"big-{size}.pdf"
    path = tmp / "www" / name
    if not path.exists():
        with path.open("wb") as fh:
            fh.write(b"%PDF-1.7\n")
            block = os.urandom(1 << 20)
            remaining = size - 16
            while remaining > 0:
                fh.write(block[: min(len(block), remaining)])
                remaining -= len(block)
            fh.write(b"\n%%EOF\n")
    out = tmp / f"out-{name}"
    env = {**os.environ, "OAFETCH_DOWNLOAD__MAX_BYTES": str(2 * 1024**3)}
    return child_peak_mb(
        [
            PY,
            "-m",
            "oafetch.cli",
            "fetch",
            f"{server.base}/{name}",
            "--out",
            str(out),
            "--no-robots",
            "--no-cache",
            "--quiet",
        ],
        env=env,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oafetch-mem-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)  # nginx's worker runs as another user
        small_n = max(1000, args.works // 10)
        small = metadata_batch(small_n, tmp)
        large = metadata_batch(args.works, tmp)
        (tmp / "www").mkdir()
        server = nginx_files.Nginx(tmp)
        try:
            ten_mb = big_file(10 * 1024 * 1024, tmp, server)
            one_gb = big_file(1024 * 1024 * 1024, tmp, server)
        finally:
            server.stop()
    print("| workload | peak RSS | wall |")
    print("|---|---|---|")
    print(
        f"| metadata-only batch, {small_n:,} works (dry run, telemetry on) | {small[0]:.0f} MB | {small[1]:.0f} s |"
    )
    print(
        f"| metadata-only batch, {args.works:,} works (dry run, telemetry on) | **{large[0]:.0f} MB** (target ≤ 300) | {large[1]:.0f} s |"
    )
    print(f"| one 10 MB file | {ten_mb[0]:.0f} MB | {ten_mb[1]:.1f} s |")
    print(f"| one 1 GB file | **{one_gb[0]:.0f} MB** | {one_gb[1]:.1f} s |")


if __name__ == "__main__":
    main()
