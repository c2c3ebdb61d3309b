"""oafetch on a real local Ray cluster (three nodes on loopback): outputs, politeness, faults.

One module-scoped cluster (``ray.cluster_utils.Cluster``: a head and two worker nodes, one CPU
each, no dashboard, every node on 127.0.0.1) serves every test here; it is shut down at the end.
Assertions are counts: each work stored once with the sandbox's bytes, no request refused by
the sandbox's server-side rate windows, no staging leftovers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Ray resolves 127.0.0.1 to the machine's own address unless told this is a one-machine setup.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
try:
    import ray
    from ray.cluster_utils import Cluster
except ImportError as exc:  # pragma: no cover - only where the extra is not installed
    pytest.skip(
        f"Ray is not installed ({exc}): pip install 'oafetch[ray]'",
        allow_module_level=True,
    )

from oafetch.demo import demo_config
from oafetch.engines.ray_engine import RayEngine
from oafetch.engines.shards import STAGING_DIR
from oafetch.sandbox import Corpus, Sandbox
from oafetch.sandbox.model import Behaviour
from oafetch.works import parse_work

RATES = {
    "unpaywall": "40/s",
    "crossref": "40/s",
    "openalex": "40/s",
    "arxiv_api": "5/s",
    "arxiv": "5/s",
    "*": "20/s",
}
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024 * 1024}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(**NODE)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(corpus=Corpus(seed=7), rates=RATES, arxiv_crawl_delay=0.2) as sandbox:
        yield sandbox


def _config(sandbox: Sandbox, out: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {"workers": 4, "cache": {"enabled": False}}
    settings.update(overrides)
    return demo_config(sandbox, out, **settings)


def _check_outputs(
    sandbox: Sandbox, out: Path, identifiers: list[str], *, runs: int = 1
) -> list[dict[str, Any]]:
    """Every work in the manifest once per run (stored ones once in all); every obtainable one
    stored with the sandbox's bytes."""
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    counts = Counter(r["work_id"] for r in rows)
    assert sorted(counts) == sorted(parse_work(i).work_id for i in identifiers)
    assert max(counts.values()) <= runs, [w for w, n in counts.items() if n > runs][:5]
    stored_rows = Counter(r["work_id"] for r in rows if r["ok"])
    assert max(stored_rows.values()) == 1
    by_id = {r["work_id"]: r for r in rows}
    for identifier in identifiers:
        expected = sandbox.expected(identifier)
        row = by_id[parse_work(identifier).work_id]
        if expected.expected_obtainable:
            assert row["ok"], (identifier, row["reason"])
            assert row["sha256"] == expected.expected_sha256
            assert (out / row["path"]).read_bytes() == sandbox.file_bytes(identifier)
        else:
            assert not row["ok"], identifier
    stored = {p.name for p in out.glob("*/*") if p.parent.name in ("pdf", "html", "xml")}
    assert len(stored) == sum(1 for r in rows if r["ok"])
    partial = [p for p in out.rglob("*") if ".part-" in p.name]
    assert not partial
    assert not (out / STAGING_DIR).exists()
    return rows


def _throttled(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.requests() if e.get("throttled")]


def test_batch_on_three_nodes_is_stored_once_and_polite(
    cluster: Cluster, sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.clear_log()
    sandbox.reset_state()
    identifiers = [w.identifier for w in sandbox.works[:150]]
    out = tmp_path / "out"
    with RayEngine(_config(sandbox, out, telemetry={"enabled": True}), shard_size=10) as engine:
        results = list(engine.run(identifiers))
        nodes = engine.collector.nodes
    assert len(results) == len(identifiers)
    _check_outputs(sandbox, out, identifiers)
    assert len(nodes) == 3, nodes  # every node ran shards
    assert not _throttled(sandbox)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["works"] == len(identifiers)
    assert summary["artifacts_success"] == sum(1 for r in results if r.ok)
    attempts = (out / "attempts.csv").read_text().splitlines()
    assert attempts[0].startswith("ts,") and len(attempts) > len(identifiers)
    assert len(list((out / "telemetry-shards").glob("*.sqlite"))) == 15
    # one store for the run, merged from the shards: it counts what the sandbox served
    import sqlite3

    from oafetch.telemetry.analytics_cli import main as telemetry_main

    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        (network,) = conn.execute(
            "SELECT COUNT(*) FROM http_events WHERE from_cache = 0"
        ).fetchone()
        (runs,) = conn.execute("SELECT COUNT(*) FROM run_summary").fetchone()
        (traces,) = conn.execute("SELECT COUNT(DISTINCT trace_id) FROM downloads").fetchone()
    assert network == len(sandbox.requests())
    assert runs == 1 and traces == len(identifiers)
    # the sandbox's own ceiling for yield; no cache in this run; a loaded 2-core machine
    obtainable = sum(1 for i in identifiers if sandbox.expected(i).expected_obtainable)
    # the sandbox serves its wrong_pdf works another article's PDF on purpose: each of those
    # quarantines what the sources name (one file per distinct wrong URL, at most 4 sources)
    wrong = sum(1 for w in sandbox.works[:150] if w.behaviour is Behaviour.WRONG_PDF)
    targets = tmp_path / "slo.toml"
    targets.write_text(
        f"[slo]\nyield_pct_min = {100 * obtainable / len(identifiers) - 0.01:.2f}\n"
        "cache_hit_pct_min = 0\nttfp_p50_ms_max = 120000\nttfp_p95_ms_max = 120000\n"
        f"identity_mismatch_per_1k_max = {1000 * 4 * wrong / len(identifiers) + 0.01:.2f}\n"
    )
    slo = ["slo", "--db", str(out / "telemetry.sqlite"), "--targets", str(targets)]
    assert telemetry_main(slo) == 0
    assert telemetry_main(["merge", str(out), "--parquet", str(tmp_path / "pq")]) == 0
    assert list((tmp_path / "pq").rglob("*.parquet"))


def test_cli_engine_ray_resumes_a_stored_batch(
    cluster: Cluster, sandbox: Sandbox, tmp_path: Path
) -> None:
    from oafetch.batch import run_batch
    from oafetch.cli import build_parser

    identifiers = [w.identifier for w in sandbox.works[150:200]]
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(identifiers) + "\n")
    out = tmp_path / "out"
    argv = ["run", str(source), "--engine", "ray", "--shard-size", "7", "--quiet"]
    args = build_parser().parse_args(argv)
    assert (args.engine, args.address) == ("ray", "auto")
    sandbox.clear_log()
    assert run_batch(args, _config(sandbox, out)) == 0
    first = _check_outputs(sandbox, out, identifiers)
    stored = {r["path"]: r["sha256"] for r in first if r["ok"]}
    assert run_batch(build_parser().parse_args(argv), _config(sandbox, out)) == 0
    again = _check_outputs(sandbox, out, identifiers, runs=2)
    assert {r["path"]: r["sha256"] for r in again if r["ok"]} == stored  # none stored twice
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reasons"].get("resumed") == sum(1 for r in first if r["ok"])
    assert not _throttled(sandbox)
    # the resumed works are outcomes of the second run in telemetry too, as after a local resume
    second_run = json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])["run_id"]
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        rows = conn.execute(
            "SELECT reason, COUNT(*) FROM downloads WHERE run_id = ? GROUP BY reason",
            (second_run,),
        ).fetchall()
        total, success = conn.execute(
            "SELECT artifacts_total, artifacts_success FROM run_summary WHERE run_id = ?",
            (second_run,),
        ).fetchone()
    assert dict(rows).get("resumed") == summary["reasons"]["resumed"]
    assert (total, success) == (summary["artifacts_total"], summary["artifacts_success"])


def test_a_node_killed_mid_run_loses_and_duplicates_nothing(
    cluster: Cluster, sandbox: Sandbox, tmp_path: Path
) -> None:
    victim = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    sandbox.clear_log()
    sandbox.reset_state()
    identifiers = [w.identifier for w in sandbox.works[200:320]]
    out = tmp_path / "out"
    killed = threading.Event()

    def kill_when_busy() -> None:
        # once some shards are published and others are running everywhere
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob(f"{STAGING_DIR}/*/*")):
            time.sleep(0.05)
        time.sleep(1.0)
        cluster.remove_node(victim, allow_graceful=False)
        killed.set()

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    with RayEngine(_config(sandbox, out), shard_size=8, limiters=1) as engine:
        killer.start()
        results = list(engine.run(identifiers))
    killer.join(timeout=60)
    assert killed.is_set()
    assert len(results) == len(identifiers)
    _check_outputs(sandbox, out, identifiers)
    assert not _throttled(sandbox)


DRIVER = """
import os, sys
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray
from oafetch import Config
from oafetch.engines.ray_engine import RayEngine
ray.init(address=sys.argv[1], log_to_driver=False)
config = Config.model_validate_json(open(sys.argv[2]).read())
ids = open(sys.argv[3]).read().split()
with RayEngine(config, shard_size=5, limiters=1) as engine:
    for _ in engine.run(ids):
        pass
"""


def test_a_killed_driver_leaves_a_run_that_resumes(
    cluster: Cluster, sandbox: Sandbox, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    identifiers = [w.identifier for w in sandbox.works[320:380]]
    out = tmp_path / "out"
    config = _config(sandbox, out)
    (tmp_path / "config.json").write_text(config.model_dump_json())
    (tmp_path / "ids.txt").write_text("\n".join(identifiers))
    manifest = out / "manifest.jsonl"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER,
            cluster.address,
            str(tmp_path / "config.json"),
            str(tmp_path / "ids.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and driver.poll() is None:
            if manifest.exists() and len(manifest.read_text().splitlines()) >= 10:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    done_before = len(manifest.read_text().splitlines())
    assert 10 <= done_before < len(identifiers)
    with RayEngine(_config(sandbox, out), shard_size=5) as engine:
        results = list(engine.run(identifiers))
    assert len(results) == len(identifiers)
    rows = _check_outputs(sandbox, out, identifiers, runs=2)
    resumed = [r for r in results if str(r.reason) == "resumed"]
    assert len(resumed) == sum(1 for r in rows[:done_before] if r["ok"])
    assert not _throttled(sandbox)


def test_three_nodes_publish_to_an_s3_bucket(
    cluster: Cluster, sandbox: Sandbox, tmp_path: Path
) -> None:
    """files_to on the cluster: every node puts its shards' files in a real S3-compatible
    server on loopback (moto's); the bucket holds each stored work's bytes, the out dir none."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    fsspec = pytest.importorskip("fsspec")
    pytest.importorskip("s3fs", reason="files_to on S3 needs s3fs: pip install 'oafetch[s3]'")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
        fs.mkdir("cluster")
        sandbox.reset_state()
        identifiers = [w.identifier for w in sandbox.works[150:190]]
        out = tmp_path / "out"
        config = _config(sandbox, out, files_to="s3://cluster/c", files_options=options)
        with RayEngine(config, shard_size=5) as engine:
            results = list(engine.run(identifiers))
            nodes = engine.collector.nodes
        assert len(nodes) >= 2, nodes
        stored = [r for r in results if r.ok]
        assert stored and all(r.object_url and r.path is None for r in stored)
        for result in stored:
            expected = sandbox.expected(
                next(i for i in identifiers if parse_work(i).work_id == result.work_id)
            )
            assert fs.cat_file(result.object_url) == sandbox.file_bytes(expected.identifier)
        obtainable = [i for i in identifiers if sandbox.expected(i).expected_obtainable]
        assert len(stored) == len(obtainable)
        assert not [p for d in ("pdf", "html", "xml") for p in (out / d).rglob("*") if p.is_file()]
    finally:
        server.stop()
