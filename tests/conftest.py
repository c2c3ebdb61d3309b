"""Shared fixtures: loopback servers and quiet, fast configurations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopback import Loopback, start
from oafetch.config import Config
from oafetch.resolvers.sources import ALL


@pytest.fixture
def server() -> Iterator[Loopback]:
    box = start()
    yield box
    box.server.shutdown()
    box.server.server_close()


_INTERNET_SOURCES = [cls.name for cls in ALL]


def fast_config(out: Path, **overrides: Any) -> Config:
    """A config for tests: no telemetry, no robots wait, quick retries (override freely)."""
    base: dict[str, Any] = {
        "out_dir": out,
        "mailto": "tester@oafetch.test",
        "telemetry": {"enabled": False},
        "politeness": {"enabled": False},
        "retry": {"attempts": 3, "backoff_initial_s": 0.01, "jitter_s": 0.0},
        "download": {"fsync": False, "min_pdf_bytes": 100},
        "cache": {"enabled": False},
        # Tests never reach the internet: every source with a real default URL is off.
        "resolvers": {name: {"enabled": False} for name in _INTERNET_SOURCES},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Config(**base)


@pytest.fixture
def make_config(tmp_path: Path) -> Any:
    def make(**overrides: Any) -> Config:
        return fast_config(tmp_path / "out", **overrides)

    return make
