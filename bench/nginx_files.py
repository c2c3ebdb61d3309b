"""PDF-like files served by a local nginx (Debian package), for the throughput benchmark.

Files: log-normal sizes, median ~300 KB, clipped to 20 KB to 5 MB, each ``%PDF-1.7`` … ``%%EOF``.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    types {{ application/pdf pdf; text/plain txt; }}
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location / {{ }}
    }}
}}
"""


def make_files(root: Path, count: int, seed: int = 11, size: int | None = None) -> list[Path]:
    """``count`` PDF-like files under ``root/www``: log-normal sizes, or all ``size`` bytes."""
    www = root / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        drawn = int(min(5_000_000, max(20_000, rng.lognormvariate(math.log(300_000), 0.9))))
        length = size or drawn
        path = www / f"f{i:05d}.pdf"
        if not path.exists() or path.stat().st_size != length:
            body = b"%PDF-1.7\n" + os.urandom(length - 16) + b"\n%%EOF\n"
            path.write_bytes(body[: length - 7] + b"\n%%EOF\n")
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(self, root: Path) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise SystemExit("nginx is not installed: apt-get install nginx-light")
        self.port = free_port()
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=self.port))
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("nginx did not start")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
