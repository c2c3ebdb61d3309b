"""Telemetry settings that cannot work are usage errors (exit 2, one clear line), never a
traceback or a run that exits 0 while its exports fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ENV_KEEP = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OAFETCH_"))}


def _run(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    ids = tmp_path / "ids.txt"
    ids.write_text("10.1234/abc\n")
    config = tmp_path / "oafetch.toml"
    config.write_text("[politeness]\nenabled = false\n[cache]\nenabled = false\n")
    args = [
        sys.executable,
        "-m",
        "oafetch.cli",
        "run",
        str(ids),
        "--out",
        str(tmp_path / "out"),
        "--config",
        str(config),
        "--dry-run",
        *extra,
    ]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**ENV_KEEP, **(env or {})}
    )


@pytest.mark.parametrize(
    "endpoint", ["not a url", "ftp://collector:4318", "http://", "localhost:4318x"]
)
def test_a_garbage_otlp_endpoint_is_exit_2_naming_the_variable(
    tmp_path: Path, endpoint: str
) -> None:
    done = _run(tmp_path, env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert done.returncode == 2, done.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in done.stderr and "Traceback" not in done.stderr


def test_a_metrics_port_in_use_is_exit_2_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = _run(tmp_path, "--metrics-port", str(port))
    assert done.returncode == 2, done.stderr
    assert "metrics_port" in done.stderr and str(port) in done.stderr
    assert "Traceback" not in done.stderr
    # the refused run left the output directory free for the next one
    again = _run(tmp_path)
    assert "in use" not in again.stderr, again.stderr
