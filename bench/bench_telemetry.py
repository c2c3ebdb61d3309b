"""Benchmark: what oafetch's telemetry costs.

1. Per span: creating and ending a span (no-op API, SDK without processors, SDK with oafetch's
   stamping + schema processors), and what the store spends per span, measured alone: the
   snapshot into a record (taken by ``on_end`` on the ending thread), then the writer thread's
   SQLite rows and JSONL line.
2. A loopback workload of PDF-sized bodies (default 500 files of 300 KB, 8 workers, one shared
   ``httpx.Client``): every file is fetched the way the pipeline does it (work → attempt → GET →
   body streamed, sha256'd and written to disk, one rate-limit event), with telemetry off
   (``Telemetry.noop()``, plain transport) and fully on (instrumented transport with oafetch's
   hooks, SQLite + JSONL, final flush included), alternating, several rounds.

Two servers: unpaced, nginx when it is installed (started here on a free loopback port with its
own config; else a threaded ``http.server`` in a separate process) — the worst case, where the
client is CPU-bound and every microsecond of telemetry shows; and paced, an ``http.server`` in a
separate process that waits ``--latency-ms`` before the headers and sends the body at
``--rate-mbps`` per connection, closer to fetching PDFs from real hosts.

Run:  .venv/bin/python bench/bench_telemetry.py [--files 500] [--size 300000] [--workers 8]
          [--rounds 5] [--spans 50000] [--latency-ms 20] [--rate-mbps 4]
Prints Markdown (machine, command, numbers) to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import importlib.metadata
import multiprocessing
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.util.types import AttributeValue

from oafetch.config import TelemetryConfig
from oafetch.telemetry import TelemetrySession, names
from oafetch.telemetry.context import identity
from oafetch.telemetry.emit import emit_rate_event
from oafetch.telemetry.jsonl_exporter import JsonlSpanExporter
from oafetch.telemetry.mapping import to_record
from oafetch.telemetry.processors import StampingProcessor
from oafetch.telemetry.runtime import Telemetry
from oafetch.telemetry.sqlite_exporter import SqliteSpanExporter

CHUNK = 256 * 1024


# -- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


@contextmanager
def nginx(root: Path, work: Path) -> Iterator[int]:
    port = free_port()
    # nginx started as root serves through an unprivileged worker: without read access to the
    # (private, 0700) temp directories every request is a 403 of 153 bytes, not a file.
    for path in (*reversed(root.parents), root):
        if path.is_relative_to(tempfile.gettempdir()) and path != Path(tempfile.gettempdir()):
            path.chmod(path.stat().st_mode | 0o755)
    conf = work / "nginx.conf"
    temp = {k: work / k for k in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  default_type application/pdf;
  client_body_temp_path {temp["body"]};
  proxy_temp_path {temp["proxy"]};
  fastcgi_temp_path {temp["fastcgi"]};
  uwsgi_temp_path {temp["uwsgi"]};
  scgi_temp_path {temp["scgi"]};
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stderr=subprocess.PIPE)
    try:
        wait_listening(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _serve_files(root: str, port: int, latency_s: float, rate_bps: float) -> None:
    """Serve ``root`` from memory; optionally wait ``latency_s`` before the headers and pace
    the body at ``rate_bps`` per connection (64 KiB writes), like a remote host."""
    files = {f"/{p.name}": p.read_bytes() for p in Path(root).iterdir()}
    step = 64 * 1024

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = files[self.path]
            if latency_s:
                time.sleep(latency_s)
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not rate_bps:
                self.wfile.write(body)
                return
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                time.sleep(step / rate_bps)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@contextmanager
def python_server(root: Path, latency_s: float = 0.0, rate_bps: float = 0.0) -> Iterator[int]:
    port = free_port()
    proc = multiprocessing.get_context("spawn").Process(
        target=_serve_files, args=(str(root), port, latency_s, rate_bps), daemon=True
    )
    proc.start()
    try:
        wait_listening(port)
        yield port
    finally:
        proc.terminate()
        proc.join(10)


# -- 1. per-span cost ------------------------------------------------------------------------------


def span_loop(telemetry: Telemetry, n: int) -> float:
    tracer = telemetry.tracer
    attrs: dict[str, AttributeValue] = {
        names.SOURCE: "unpaywall",
        names.TIER: 1,
        names.HOST: "api.unpaywall.org",
    }
    started = time.perf_counter()
    with identity(run_id="bench", work_id="w"):
        for _ in range(n):
            with tracer.start_as_current_span(names.SPAN_ATTEMPT, attributes=attrs) as span:
                span.set_attribute(names.OUTCOME, "success")
                span.set_attribute(names.REASON, "ok")
    return time.perf_counter() - started


class _Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def bench_spans(n: int, out: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    t = span_loop(Telemetry.noop(), n)
    rows.append(("start+end, no-op API (telemetry off)", f"{t / n * 1e6:.1f} µs"))
    bare = TracerProvider(shutdown_on_exit=False)
    t = span_loop(Telemetry.from_providers(bare, None), n)
    rows.append(("start+end, SDK without processors", f"{t / n * 1e6:.1f} µs"))
    session = TelemetrySession.start(TelemetryConfig(), out / "session")
    t = span_loop(session.telemetry, n)
    rows.append(("start+end, SDK + stamping + schema processor", f"{t / n * 1e6:.1f} µs"))
    started = time.perf_counter()
    assert session.flush(timeout_s=600)
    rows.append(
        (
            "flush right after that loop (writer catching up)",
            f"{time.perf_counter() - started:.2f} s",
        )
    )
    session.shutdown()

    # The writer thread's work per span, measured alone on this thread.
    collect = _Collect()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(StampingProcessor())
    provider.add_span_processor(collect)
    span_loop(Telemetry.from_providers(provider, None), n)
    spans = collect.spans
    sqlite_w = SqliteSpanExporter(out / "alone" / "telemetry.sqlite")
    jsonl_w = JsonlSpanExporter(out / "alone" / "spans.jsonl")
    t0 = time.perf_counter()
    records = [to_record(s) for s in spans]
    t1 = time.perf_counter()
    for i in range(0, n, 2048):
        sqlite_w.write(records[i : i + 2048])
    t2 = time.perf_counter()
    for i in range(0, n, 2048):
        jsonl_w.write(records[i : i + 2048])
    t3 = time.perf_counter()
    sqlite_w.shutdown()
    jsonl_w.shutdown()
    rows.append(("ending thread (`on_end`): span → record", f"{(t1 - t0) / n * 1e6:.1f} µs"))
    rows.append(
        ("writer: record → rows → SQLite (batches of 2048)", f"{(t2 - t1) / n * 1e6:.1f} µs")
    )
    rows.append(("writer: record → JSONL line", f"{(t3 - t2) / n * 1e6:.1f} µs"))
    rows.append(
        ("**store total per span (record + SQLite + JSONL)**", f"**{(t3 - t0) / n * 1e6:.1f} µs**")
    )
    return rows


# -- 2. loopback workload --------------------------------------------------------------------------


def fetch_all(
    telemetry: Telemetry,
    transport: httpx.BaseTransport,
    base: str,
    files: list[str],
    out: Path,
    workers: int,
) -> None:
    tracer = telemetry.tracer
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(transport=transport, limits=limits, timeout=30) as client:

        def one(name: str) -> None:
            with (
                identity(run_id="bench", work_id=name),
                tracer.start_as_current_span(names.SPAN_WORK) as work,
                tracer.start_as_current_span(
                    names.SPAN_ATTEMPT,
                    attributes={names.SOURCE: "direct", names.TIER: 1, names.HOST: "127.0.0.1"},
                ) as attempt,
            ):
                emit_rate_event(host="127.0.0.1", role="artifact", action="acquire", delay_ms=0.0)
                url = f"{base}/{name}"
                facts: dict[str, Any] = {
                    "role": "artifact",
                    "host": "127.0.0.1",
                    "url_hash": hashlib.sha256(url.encode()).hexdigest()[:16],
                    "url_redacted": url,
                    "rate_delay_ms": 0.0,
                    "breaker_state": "closed",
                    "retry_count": 0,
                }
                digest = hashlib.sha256()
                size = 0
                with (
                    client.stream("GET", url, extensions={"oafetch": facts}) as resp,
                    tracer.start_as_current_span(names.SPAN_BODY) as body,
                    (out / name).open("wb") as fh,
                ):
                    if resp.status_code != 200:
                        raise RuntimeError(f"{url}: HTTP {resp.status_code}, not a file")
                    for chunk in resp.iter_raw(CHUNK):
                        digest.update(chunk)
                        fh.write(chunk)
                        size += len(chunk)
                    body.set_attribute(names.BODY_BYTES, size)
                    if "client_span_id" in facts:
                        body.set_attribute(names.BODY_HTTP_SPAN_ID, facts["client_span_id"])
                attempt.set_attributes({names.OUTCOME: "success", names.REASON: "ok"})
                work.set_attributes(
                    {
                        names.OUTCOME: "success",
                        names.REASON: "ok",
                        names.BYTES: size,
                        names.SHA256: digest.hexdigest(),
                        names.FINAL_PATH: name,
                    }
                )

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, files))


VARIANTS = ("off", "no-client-span", "full")


def run_variant(
    variant: str, base: str, files: list[str], work: Path, workers: int
) -> tuple[float, float]:
    """``off``; ``full``; ``no-client-span``: full, but a plain transport (no instrumentation)."""
    out = work / variant
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if variant == "off":
        fetch_all(Telemetry.noop(), httpx.HTTPTransport(retries=0), base, files, out, workers)
    else:
        session = TelemetrySession.start(TelemetryConfig(), out)
        transport: httpx.BaseTransport = httpx.HTTPTransport(retries=0)
        if variant == "full":
            transport = session.instrument(transport)
        run_attrs = {names.RUN_ID: "bench"}
        with (
            identity(run_id="bench"),
            session.telemetry.tracer.start_as_current_span(names.SPAN_RUN, attributes=run_attrs),
        ):
            fetch_all(session.telemetry, transport, base, files, out, workers)
        session.shutdown()  # includes the final flush of the store
    return time.perf_counter() - wall0, time.process_time() - cpu0


def make_files(root: Path, n: int, size: int) -> list[str]:
    root.mkdir(exist_ok=True)
    files = []
    for i in range(n):
        name = f"f{i:05d}.pdf"
        (root / name).write_bytes(b"%PDF-1.7\n" + os.urandom(size - 16) + b"\n%%EOF\n")
        files.append(name)
    return files


def bench_workload(args: argparse.Namespace, work: Path, paced: bool) -> list[tuple[str, str]]:
    root = work / "www"
    work.mkdir(parents=True, exist_ok=True)
    files = make_files(root, args.files, args.size)
    server: Callable[[], Any]
    if paced:
        kind = (
            f"python http.server in its own process, {args.latency_ms:g} ms before the headers, "
            f"body paced at {args.rate_mbps:g} MB/s per connection"
        )
        server = lambda: python_server(root, args.latency_ms / 1000, args.rate_mbps * 1e6)  # noqa: E731
    elif shutil.which("nginx"):
        version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        kind = f"nginx {version.strip().split('/')[-1]}, unpaced"
        server = lambda: nginx(root, work)  # noqa: E731
    else:
        kind = "python http.server in its own process, unpaced"
        server = lambda: python_server(root)  # noqa: E731
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    with server() as port:
        base = f"http://127.0.0.1:{port}"
        for variant in VARIANTS:  # warm-up: page cache, imports, connection pools
            run_variant(variant, base, files[:50], work, args.workers)
        for _ in range(args.rounds):
            for variant in VARIANTS:
                times[variant].append(run_variant(variant, base, files, work, args.workers))
    conn = sqlite3.connect(work / "full" / "telemetry.sqlite")
    (linked,) = conn.execute("SELECT COUNT(*) FROM http_events WHERE bytes IS NOT NULL").fetchone()
    (downloads,) = conn.execute("SELECT COUNT(*) FROM downloads").fetchone()
    conn.close()

    def med(variant: str, i: int) -> float:
        return statistics.median(x[i] for x in times[variant])

    off_w, mid_w, full_w = (med(v, 0) for v in VARIANTS)
    off_c, mid_c, full_c = (med(v, 1) for v in VARIANTS)
    mb = args.files * args.size / 1e6
    n = args.files

    def pct(a: float, b: float) -> str:
        return f"{(a / b - 1) * 100:+.1f} %"

    cpu = (
        f"{off_c / n * 1e6:.0f} µs / +{(mid_c - off_c) / n * 1e6:.0f} µs"
        f" / +{(full_c - mid_c) / n * 1e6:.0f} µs"
    )
    rows = [
        ("server", kind),
        ("workload", f"{n} files of {args.size:,} B, {args.workers} workers, {args.rounds} rounds"),
        ("wall, telemetry off", f"{off_w:.3f} s ({n / off_w:.0f} files/s, {mb / off_w:.0f} MB/s)"),
        ("wall, oafetch spans + store, no CLIENT span", f"{mid_w:.3f} s ({pct(mid_w, off_w)})"),
        ("wall, full telemetry", f"{full_w:.3f} s ({n / full_w:.0f} files/s)"),
        ("**wall-time overhead of full telemetry**", f"**{pct(full_w, off_w)}**"),
        ("client CPU per file: off / + spans and store / + CLIENT span", cpu),
        ("wall per round, off", ", ".join(f"{w:.3f}" for w, _ in times["off"])),
        ("wall per round, full", ", ".join(f"{w:.3f}" for w, _ in times["full"])),
        (
            "store check (last full round)",
            f"{downloads} downloads, {linked} http_events with bytes",
        ),
    ]
    return rows


def versions() -> str:
    pkgs = ["opentelemetry-sdk", "opentelemetry-instrumentation-httpx", "httpx"]
    return ", ".join(f"{p} {importlib.metadata.version(p)}" for p in pkgs)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {versions()}"
    )


def table(rows: list[tuple[str, str]]) -> str:
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="paced workload")
    parser.add_argument("--rate-mbps", type=float, default=4.0, help="paced workload")
    parser.add_argument(
        "--only",
        choices=("spans", "unpaced", "paced"),
        action="append",
        help="run only these sections (repeatable; default: all)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    print("## Telemetry overhead\n")
    print(f"- machine: {machine()}")
    print(f"- command: `{Path(sys.executable).name} {' '.join(sys.argv)}`")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}\n")
    with tempfile.TemporaryDirectory(prefix="oafetch-bench-") as tmp:
        work = Path(tmp)
        only = set(args.only or ("spans", "unpaced", "paced"))
        if "spans" in only:
            print(
                f"### Per span ({args.spans:,} `oafetch.attempt` spans, 5 attributes, one thread)\n"
            )
            print(table(bench_spans(args.spans, work / "spans")))
            print()
        if "unpaced" in only:
            print("### Loopback download workload, unpaced (the worst case: CPU-bound)\n")
            print(table(bench_workload(args, work / "unpaced", paced=False)))
            print()
        if "paced" in only:
            print("### Loopback download workload, paced like a remote host\n")
            print(table(bench_workload(args, work / "paced", paced=True)))
            print()
        print(
            "Off = `Telemetry.noop()` and a plain `httpx.HTTPTransport`; full = `TelemetrySession` "
            "(SQLite + JSONL), the instrumented transport with oafetch's hooks, run/work/attempt/"
            "CLIENT/body spans and one rate-limit event per file, final flush included; the middle "
            "variant is full without the CLIENT-span transport. Every variant streams, sha256s and "
            "writes each body (no fsync)."
        )


if __name__ == "__main__":
    main()
