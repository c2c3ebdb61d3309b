"""One work (PeerJ's recorded OpenAlex record, edited per test) through an OpenAlex-only chain on
loopback: the record answers its DOI look-up, the test's files answer their paths, everything
else is a 404. Each test shapes the record and the files; this module runs them the same way."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from oafetch import Config, Downloader
from oafetch.results import DownloadResult

DOI = "10.7717/peerj.4375"
RECORD_PATH = f"/openalex/works/doi:{DOI}"


def base_url(server: HTTPServer) -> str:
    return server.url_for("").rstrip("/")


def run_peerj(
    server: HTTPServer,
    tmp_path: Path,
    record: Mapping[str, Any],
    files: Mapping[str, tuple[bytes | str, str, Mapping[str, str]]],
    *,
    telemetry: bool = False,
    **download: Any,
) -> tuple[DownloadResult, list[str]]:
    """Serve ``record`` and ``files`` (path → body, content type, headers), run the DOI with
    ``download`` settings (identity off, no fsync unless given); the result and every path asked,
    in order."""
    asked: list[str] = []

    def answer(request: Request) -> Response:
        asked.append(request.path)
        if request.path == RECORD_PATH:
            return Response(json.dumps(record), content_type="application/json")
        if request.path in files:
            body, content_type, headers = files[request.path]
            return Response(body, content_type=content_type, headers=dict(headers))
        return Response("not found", status=404)

    server.expect_request(re.compile(".*")).respond_with_handler(answer)
    config = Config(
        mailto="tester@oafetch.test",
        out_dir=tmp_path / "out",
        retry={"attempts": 1},
        politeness={"enabled": False},
        robots={"enabled": False},
        cache={"enabled": False},
        telemetry={"enabled": telemetry},
        download={"fsync": False, "identity": "off", **download},
        resolvers={"openalex": {"base_url": f"{base_url(server)}/openalex"}},
        fallback={"tiers": [{"name": "direct", "sources": ["openalex"]}]},
    )
    with Downloader(config, resume=False) as dl:
        [result] = list(dl.run([DOI]))
    return result, asked


def manifest_row(tmp_path: Path) -> dict[str, Any]:
    """The run's one manifest row."""
    [line] = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    row: dict[str, Any] = json.loads(line)
    return row
