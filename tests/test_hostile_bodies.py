"""Hostile servers against the body and header paths: stacked compression bombs (fetched,
cached, robots.txt), codings nobody asked for, and servers that drip their headers or a cached
body one byte at a time. Memory is measured in a child process (its own peak RSS); time bounds
are generous: they fail only when a wait is unbounded, never because the machine is slow."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import RawServer, quick_loopback, raw_servers
from loopback import Loopback
from oafetch.errors import FetchError
from oafetch.http.cache import build_cache
from oafetch.http.client import HttpClient
from oafetch.http.decoding import coding_chain, decode_stream
from oafetch.telemetry.runtime import Telemetry
from oafetch.tokens import Reason, Role

TESTS = Path(__file__).parent
EXPANDED = 512 * 1024 * 1024  # what the stacked bomb expands to
RSS_LIMIT_MB = 200
# Fails only if a wait is unbounded: the deadlines under test are a few seconds.
HANG_S = 90.0


@pytest.fixture(scope="module")
def stacked_bomb() -> bytes:
    """``gzip(gzip(%PDF + 512 MiB of zeros))``: about 1 KB on the wire."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [inner.compress(b"%PDF-1.7\n")]
    block = b"\0" * (1 << 20)
    parts += [inner.compress(block) for _ in range(EXPANDED >> 20)]
    parts.append(inner.flush())
    bomb = gzip.compress(b"".join(parts), 9)
    assert len(bomb) < 3 * 1024
    return bomb


@pytest.fixture
def server() -> Iterator[Loopback]:
    yield from quick_loopback()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    yield from raw_servers()


# -- the decoder, pure ---------------------------------------------------------------------------
def test_a_coding_chain_is_read_in_the_order_it_was_applied() -> None:
    assert coding_chain("gzip, identity , GZIP,") == ["gzip", "gzip"]
    assert coding_chain("") == []


@pytest.mark.parametrize("header", ["gzip, gzip", "x-gzip,deflate", "deflate"])
def test_every_chain_is_undone_in_bounded_steps(header: str) -> None:
    payload = b"%PDF-1.7\n" + b"\0" * 1_000_000
    data = payload
    for coding in coding_chain(header):
        wbits = zlib.MAX_WBITS | 16 if "gzip" in coding else zlib.MAX_WBITS
        packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
        data = packer.compress(data) + packer.flush()
    pieces = list(
        decode_stream(
            [data[i : i + 100] for i in range(0, len(data), 100)], header, 4096, "http://h/x"
        )
    )
    assert b"".join(pieces) == payload
    assert max(len(p) for p in pieces) <= 4096


@pytest.mark.parametrize("header", ["br", "gzip, zstd", "compress", "gzip, gzip, gzip, gzip, gzip"])
def test_a_coding_that_cannot_be_bounded_is_refused(header: str) -> None:
    with pytest.raises(FetchError, match=r"Content-Encoding|stacked") as caught:
        list(decode_stream([b"whatever"], header, 4096, "http://h/x?api_key=s3cr3t"))
    assert caught.value.reason is Reason.DOWNLOAD_ERROR
    assert "s3cr3t" not in str(caught.value)


# -- bombs, measured in a child process -----------------------------------------------------------
_CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from conftest import fast_config
mode, url, out = sys.argv[2], sys.argv[3], Path(sys.argv[4])
cache = {"enabled": True, "dir": out / "cache", "ttl_s": {"127.0.0.1": "1h"}}
if mode == "artifact":
    from oafetch import Downloader
    config = fast_config(out, robots={"enabled": False}, download={"max_bytes": 1 << 30})
    with Downloader(config, resume=False) as dl:
        result = dl.fetch(url)
    print("RESULT", result.outcome, result.reason)
else:
    from oafetch.errors import FetchError
    from oafetch.http.cache import build_cache
    from oafetch.http.client import HttpClient
    from oafetch.telemetry.runtime import Telemetry
    from oafetch.tokens import Role
    config = fast_config(out, cache=cache, robots={"enabled": mode == "robots"})
    noop = Telemetry.noop()
    with HttpClient(config, noop, cache=build_cache(config, noop)) as http:
        try:
            if mode == "robots":
                http.get_text(url, role=Role.LANDING)
            else:
                http.get_json(url)
            print("RESULT", "answered")
        except FetchError as exc:
            print("RESULT", "error", exc.reason)
# this process's own peak (VmHWM is per address space, so it starts again at exec, unlike
# ru_maxrss, which keeps the parent's size when the child was forked from a large pytest)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print("PEAK_KB", line.split()[1])
"""


def _peak_rss_mb(mode: str, url: str, out: Path) -> tuple[float, str]:
    """Run the child; return its own peak RSS (MiB) and what it printed."""
    log = out.parent / f"{mode}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(TESTS), mode, url, str(out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        killer = threading.Timer(HANG_S, lambda: os.kill(proc.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            proc.returncode = 0  # reaped by wait4 above
    text = log.read_text(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    del usage
    peak_kb = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("PEAK_KB"))
    return peak_kb / 1024, text


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["artifact", "metadata", "robots"])
def test_a_stacked_gzip_bomb_keeps_peak_rss_small(
    mode: str, stacked_bomb: bytes, server: Loopback, tmp_path: Path
) -> None:
    """1 KB of ``Content-Encoding: gzip, gzip`` expanding to 512 MiB: fetched as a file, as a
    cached API answer and as a cached robots.txt, the process stays under 200 MB."""
    headers = {"Content-Encoding": "gzip, gzip", "Cache-Control": "max-age=600"}
    kinds = {"artifact": "application/pdf", "metadata": "application/json", "robots": "text/plain"}
    bomb_path = "/robots.txt" if mode == "robots" else "/bomb"
    server.routes[bomb_path] = lambda h: h.reply(200, stacked_bomb, kinds[mode], headers)
    server.routes["/page"] = lambda h: h.reply(200, b"<html><body>p</body></html>", "text/html")
    url = server.url("/page" if mode == "robots" else "/bomb")
    peak, printed = _peak_rss_mb(mode, url, tmp_path / "out")
    assert server.hits(bomb_path), "the bomb was served"
    assert "RESULT" in printed
    assert peak < RSS_LIMIT_MB, f"peak RSS {peak:.0f} MB while decoding a stacked bomb"


def test_a_coding_sent_unasked_fails_the_download_clearly(
    server: Loopback, make_config: Any
) -> None:
    server.routes["/br.pdf"] = lambda h: h.reply(
        200, b"\x1b\x00\x00" * 50, "application/pdf", {"Content-Encoding": "br"}
    )
    from oafetch import Downloader

    with Downloader(make_config(robots={"enabled": False}), resume=False) as dl:
        result = dl.fetch(server.url("/br.pdf"))
    assert result.reason is Reason.DOWNLOAD_ERROR
    assert server.hits("/br.pdf")[0].headers.get("Accept-Encoding") == "gzip, deflate"


# -- drips ----------------------------------------------------------------------------------------
def _drip_headers(conn: socket.socket, _: bytes, server: RawServer) -> None:
    """A status line, then one header byte every 0.2 s for ever."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not server.stop.wait(0.2):
        try:
            conn.sendall(b"X")
        except OSError:
            return


def _drip_cacheable_robots(conn: socket.socket, _: bytes, server: RawServer) -> None:
    """A cacheable robots.txt whose body arrives one byte every 0.2 s for ever."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\n"
        b"Connection: close\r\n\r\nUser-agent: *\n"
    )
    while not server.stop.wait(0.2):
        try:
            conn.sendall(b"#")
        except OSError:
            return


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # the outcome is what the test reads
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def test_headers_dripped_a_byte_at_a_time_end_at_the_deadline(
    raw: Callable[..., RawServer], make_config: Any
) -> None:
    srv = raw(_drip_headers)
    config = make_config(download={"max_body_s": 1.5}, retry={"attempts": 2})
    with HttpClient(config) as http:
        thread, box = _in_thread(lambda: http.get_text(srv.url("/slow"), role=Role.METADATA))
        thread.join(HANG_S)
    assert not thread.is_alive(), "a dripping server held the request past every deadline"
    assert isinstance(box[0], FetchError) and box[0].reason is Reason.TIMEOUT
    assert len(srv.requests) == 2, "each attempt ended at its deadline and was retried once"


def test_a_request_stuck_in_a_header_drip_stops_when_the_run_is_cancelled(
    raw: Callable[..., RawServer], make_config: Any
) -> None:
    srv = raw(_drip_headers)
    config = make_config(download={"max_body_s": 3600}, retry={"attempts": 1})
    with HttpClient(config) as http:
        thread, box = _in_thread(lambda: http.get_text(srv.url("/slow"), role=Role.METADATA))
        while not srv.requests and thread.is_alive():
            time.sleep(0.05)
        http.cancel.set()
        thread.join(HANG_S)
    assert not thread.is_alive(), "cancelling did not interrupt a blocked read"
    assert isinstance(box[0], FetchError)


def test_a_cacheable_robots_txt_that_drips_ends_at_the_body_deadline(
    raw: Callable[..., RawServer], make_config: Any, tmp_path: Path
) -> None:
    srv = raw(_drip_cacheable_robots)
    config = make_config(
        cache={"enabled": True, "dir": tmp_path / "cache", "ttl_s": {"127.0.0.1": "1h"}},
        robots={"enabled": True},
        download={"max_body_s": 1.5},
        retry={"attempts": 1},
    )
    noop = Telemetry.noop()
    with HttpClient(config, noop, cache=build_cache(config, noop)) as http:
        thread, box = _in_thread(lambda: http.get_text(srv.url("/page"), role=Role.LANDING))
        thread.join(HANG_S)
    assert not thread.is_alive(), "a dripping robots.txt held the cache read for ever"
    assert box, "the request ended"
    assert srv.path_of(0) == "/robots.txt"
