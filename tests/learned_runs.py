"""A batch run on the sandbox for the learned-order tests: state and log reset first, cache off,
telemetry on; returns (works stored, requests the sandbox served)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oafetch import Downloader
from oafetch.demo import demo_config
from oafetch.sandbox import Sandbox

RATES = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "20/s"}


def run(sandbox: Sandbox, out: Path, ids: list[str], **fallback: Any) -> tuple[int, int]:
    """Run ``ids`` into ``out`` with these ``[fallback]`` settings."""
    sandbox.clear_log()
    sandbox.reset_state()
    config = demo_config(
        sandbox,
        out,
        workers=3,
        cache={"enabled": False},
        telemetry={"enabled": True},
        fallback=fallback,
    )
    with Downloader(config, resume=False) as dl:
        results = list(dl.run(ids))
    return sum(r.ok for r in results), len(sandbox.requests())
