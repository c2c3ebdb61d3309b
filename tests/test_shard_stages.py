"""A shard says when its last work is under way, before its last works end: an engine starts
the next shard then, beside them, instead of letting the fallback chain drain at each boundary."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from loopback import Handler, Loopback, pdf_bytes
from oafetch.engines.shards import ADMITTED, Shard, ShardResult, run_shard, run_shard_stages
from oafetch.works import as_lines


def _shard(
    server: Loopback, n: int, slow: threading.Event, ended: threading.Event | None = None
) -> Shard:
    for i in range(n):
        body = pdf_bytes(800 + i, seed=i)

        def route(h: Handler, body: bytes = body, last: bool = i == n - 1) -> None:
            if last:  # the shard's last work answers only once the test lets it (or 30 s)
                slow.wait(30)
            h.reply(200, body, "application/pdf")
            if last and ended is not None:
                ended.set()

        server.routes[f"/w{i}.pdf"] = route
    return Shard(0, tuple(as_lines([server.url(f"/w{i}.pdf") for i in range(n)])))


def test_admitted_comes_while_the_shards_last_work_is_still_running(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    released, ended = threading.Event(), threading.Event()
    shard = _shard(server, 6, released, ended)
    config = make_config(workers=3)
    stages: list[Any] = []
    for stage in run_shard_stages(
        shard, config, out_dir=str(tmp_path / "run"), run_id="r1", limiter=None, carrier={}
    ):
        stages.append((stage, ended.is_set()))
        released.set()
    assert [s if s == ADMITTED else type(s) for s, _ in stages] == [ADMITTED, ShardResult]
    assert stages[0][1] is False, "ADMITTED came only after the last work had ended"
    result = stages[1][0]
    assert sum(r.ok for r in result.results) == 6 and len(result.manifest_rows) == 6


def test_run_shard_returns_the_result_alone(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    released = threading.Event()
    released.set()
    shard = _shard(server, 3, released)
    result = run_shard(
        shard, make_config(), out_dir=str(tmp_path / "run"), run_id="r2", limiter=None, carrier={}
    )
    assert isinstance(result, ShardResult) and sum(r.ok for r in result.results) == 3
