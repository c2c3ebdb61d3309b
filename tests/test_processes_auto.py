"""``processes = "auto"`` (the default of ``oafetch run``): one worker process per core for a
batch worth it, one process where more would not pay or would lose what the user asked for —
and a multi-process run leaves the outputs of a one-process run (one ``spans.jsonl`` too)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loopback import Handler, Loopback, pdf_bytes
from oafetch.cli import build_parser
from oafetch.config import Config
from oafetch.engines import choose
from oafetch.engines.choose import AUTO_MIN_WORKS, choose_processes
from oafetch.errors import ConfigError

CONFIG = (
    "[politeness]\nenabled = false\n"
    "[download]\nfsync = false\nmin_pdf_bytes = 100\n"
    "[cache]\nenabled = false\n"
)


@pytest.mark.parametrize(
    ("setting", "kwargs", "expected"),
    [
        (3, {"cores": 2, "works": 10}, 3),  # an explicit number is obeyed, whatever the batch
        (1, {"cores": 8, "works": None}, 1),
        ("auto", {"cores": 4, "works": None}, 4),  # streamed input: one per core
        ("auto", {"cores": 4, "works": AUTO_MIN_WORKS}, 4),
        ("auto", {"cores": 4, "works": AUTO_MIN_WORKS - 1}, 1),  # too short to pay
        ("auto", {"cores": 1, "works": 10**6}, 1),
        ("auto", {"cores": 4, "works": None, "list_only": True}, 1),
        ("auto", {"cores": 4, "works": None, "metrics_port": 9464}, 1),
        ("auto", {"cores": 4, "works": None, "metrics_port": 0}, 1),  # any port, even 0
    ],
)
def test_auto_picks_one_process_per_core_only_where_it_pays(
    setting: Any, kwargs: dict[str, Any], expected: int
) -> None:
    choice = choose_processes(setting, **kwargs)
    assert choice.processes == expected
    assert choice.why  # said to the user


def _args(*argv: str) -> Any:
    return build_parser().parse_args(["run", "ids.txt", *argv])


def test_the_cli_passes_what_the_choice_depends_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from oafetch.batch import process_choice

    monkeypatch.setattr("oafetch.batch.machine_cores", lambda: 4)
    config = Config()
    assert config.processes == "auto"
    assert process_choice(_args(), config, None).processes == 4
    assert process_choice(_args(), config, 5000).processes == 4
    assert process_choice(_args(), config, 10).processes == 1
    assert process_choice(_args("--list-only"), config, None).processes == 1
    with_port = Config(telemetry={"metrics_port": 9464})
    assert process_choice(_args(), with_port, None).processes == 1
    assert process_choice(_args(), Config(processes=2), 10).processes == 2
    assert _args("--processes", "auto").processes == "auto"
    assert _args("--processes", "3").processes == 3
    with pytest.raises(SystemExit):
        _args("--processes", "0")


def test_processes_does_not_change_the_config_hash() -> None:
    """Like ``workers``, how many processes fetch changes nothing about what is fetched: a run
    resumed with another count is the same configuration."""
    hashes = {Config(processes=p).config_hash for p in ("auto", 1, 2, 16)}
    assert len(hashes) == 1


def test_processes_from_the_environment_and_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAFETCH_PROCESSES", "3")
    assert Config.load().processes == 3
    monkeypatch.setenv("OAFETCH_PROCESSES", "auto")
    assert Config.load().processes == "auto"
    monkeypatch.delenv("OAFETCH_PROCESSES")
    toml = tmp_path / "oafetch.toml"
    toml.write_text('processes = "many"\n')
    with pytest.raises(ConfigError, match="processes"):
        Config.load(toml)
    toml.write_text("processes = 0\n")
    with pytest.raises(ConfigError, match="processes"):
        Config.load(toml)


def _serve(server: Loopback, n: int) -> dict[str, bytes]:
    bodies = {}
    for i in range(n):
        body = pdf_bytes(400 + i % 50, seed=i)
        bodies[f"/w{i}.pdf"] = body

        def route(h: Handler, body: bytes = body) -> None:
            h.reply(200, body, "application/pdf")

        server.routes[f"/w{i}.pdf"] = route
    return bodies


def _run(tmp_path: Path, server: Loopback, n: int) -> tuple[Path, subprocess.CompletedProcess[str]]:
    bodies = _serve(server, n)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    (tmp_path / "oafetch.toml").write_text(CONFIG)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "oafetch.cli", "run", str(ids), "--out", str(out)]
    argv += ["--config", str(tmp_path / "oafetch.toml"), "--workers", "4"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done


def _summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


@pytest.mark.slow
def test_a_long_batch_runs_on_every_core_by_default(server: Loopback, tmp_path: Path) -> None:
    if choose.machine_cores() < 2:
        pytest.skip("one core here: processes = auto runs every batch in one process")
    n = AUTO_MIN_WORKS
    out, done = _run(tmp_path, server, n)
    cores = choose.machine_cores()
    assert f"oafetch: {cores} worker processes (one per core" in done.stderr
    assert _summary(out)["engine"] == "processes"
    # the configuration's notes (no CORE key here) once for the run, not once per shard
    assert done.stderr.count("resolver core skipped") == 1, done.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == n and len({r["work_id"] for r in rows if r["ok"]}) == n
    # one spans.jsonl, as one process writes it: every work's trace in it, whole lines
    spans = [json.loads(line) for line in (out / "spans.jsonl").read_text().splitlines()]
    works = [s for s in spans if s["name"] == "oafetch.work"]
    assert len(works) == n and len({s["trace_id"] for s in works}) == n
    assert not list(out.glob("telemetry-shards/*.jsonl"))
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        (downloads,) = conn.execute("SELECT count(*) FROM downloads").fetchone()
    assert downloads == n


@pytest.mark.slow
def test_a_short_batch_runs_in_this_process_by_default(server: Loopback, tmp_path: Path) -> None:
    out, done = _run(tmp_path, server, 30)
    assert "worker processes" not in done.stderr
    assert "engine" not in _summary(out)  # the one-process mode
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 30


def test_a_prometheus_exporter_from_the_environment_keeps_auto_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from oafetch.batch import process_choice

    monkeypatch.setattr("oafetch.batch.machine_cores", lambda: 4)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    assert process_choice(_args(), Config(), None).processes == 1
    # with telemetry off nothing is served: every core
    assert process_choice(_args(), Config(telemetry={"enabled": False}), None).processes == 4


def test_serve_metrics_false_never_serves_not_even_from_the_environment() -> None:
    from oafetch.config import TelemetryConfig
    from oafetch.telemetry import otel_env

    env = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}
    assert otel_env.read(TelemetryConfig(), env).prometheus_port == 9999
    assert otel_env.read(TelemetryConfig(serve_metrics=False), env).prometheus_port is None
    quiet = TelemetryConfig(metrics_port=1, serve_metrics=False)
    assert otel_env.read(quiet).prometheus_port is None


@pytest.mark.slow
def test_workers_never_bind_the_prometheus_port_the_environment_names(
    server: Loopback, tmp_path: Path
) -> None:
    """``OTEL_METRICS_EXPORTER=prometheus`` is inherited by every worker process; a shard that
    bound the port would fail (the port is taken here, as a second shard would find it)."""
    import socket

    n = 40
    bodies = _serve(server, n)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(server.url(p) for p in bodies) + "\n")
    (tmp_path / "oafetch.toml").write_text(CONFIG)
    out = tmp_path / "out"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **os.environ,
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(taken.getsockname()[1]),
        }
        argv = [sys.executable, "-m", "oafetch.cli", "run", str(ids), "--out", str(out)]
        argv += ["--config", str(tmp_path / "oafetch.toml"), "--processes", "2"]
        argv += ["--shard-size", "10", "--workers", "2"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "is not served by --engine ray or --processes N" in done.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sum(r["ok"] for r in rows) == n, [r["reason"] for r in rows if not r["ok"]]
