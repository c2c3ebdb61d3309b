"""Files published to an object store (``files_to``): a real S3-compatible server on loopback
(moto's server), the sandbox web, the multi-process engine. Every stored file lands once, whole
and byte-identical, at the key the manifest names; nothing stays in the output directory; a
resumed run asks nothing again; a put that fails keeps the file and the next run publishes it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs", reason="files_to on S3 needs s3fs: pip install 'oafetch[s3]'")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")

import fsspec  # noqa: E402

from oafetch import Config, Downloader  # noqa: E402
from oafetch.demo import demo_config  # noqa: E402
from oafetch.engines.process_engine import ProcessEngine  # noqa: E402
from oafetch.engines.shards import STAGING_DIR  # noqa: E402
from oafetch.errors import ConfigError  # noqa: E402
from oafetch.sandbox import Corpus, Sandbox  # noqa: E402
from oafetch.works import parse_work  # noqa: E402

RATES = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "20/s"}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    fs.mkdir("corpus")
    try:
        yield {"options": options, "fs": fs}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(corpus=Corpus(seed=7, n_works=80), rates=RATES) as sandbox:
        yield sandbox


def _obtainable(sandbox: Sandbox, n: int) -> list[str]:
    return [w.identifier for w in sandbox.works if w.expected_obtainable][:n]


def _config(sandbox: Sandbox, out: Path, s3: dict[str, Any], files_to: str, **more: Any) -> Any:
    return demo_config(
        sandbox,
        out,
        workers=4,
        cache={"enabled": False},
        files_to=files_to,
        files_options=s3["options"],
        **more,
    )


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _local_files(out: Path) -> list[Path]:
    return [p for d in ("pdf", "html", "xml") for p in (out / d).rglob("*") if p.is_file()]


def _expected(sandbox: Sandbox) -> dict[str, str | None]:
    return {parse_work(w.identifier).work_id: w.expected_sha256 for w in sandbox.works}


def test_processes_publish_every_file_once_whole_at_its_key(
    sandbox: Sandbox, s3: dict[str, Any], tmp_path: Path
) -> None:
    ids = _obtainable(sandbox, 30)
    out = tmp_path / "out"
    sandbox.reset_state()
    config = _config(sandbox, out, s3, "s3://corpus/run1", telemetry={"enabled": True})
    with ProcessEngine(config, processes=2, shard_size=8) as engine:
        results = list(engine.run(ids))
    stored = [r for r in results if r.ok]
    assert len(stored) == len(ids)
    assert all(r.path is None and r.object_url for r in stored)
    rows = {r["work_id"]: r for r in _rows(out) if r["ok"]}
    assert set(rows) == {parse_work(i).work_id for i in ids}
    fs, expected = s3["fs"], _expected(sandbox)
    for work_id, row in rows.items():
        assert row["object"] == f"s3://corpus/run1/{row['path']}"
        body = fs.cat_file(row["object"])
        assert hashlib.sha256(body).hexdigest() == row["sha256"] == expected[work_id]
    assert len(fs.find("corpus/run1")) == len({r["path"] for r in rows.values()})
    assert _local_files(out) == []  # the files live in the bucket only
    assert not (out / STAGING_DIR).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files_to"] == "s3://corpus/run1" and summary["unpublished"] == 0
    assert "testing" not in (out / "summary.json").read_text()  # no credential written

    # resumed: nothing asked again; with verify_stored a vanished object is fetched again
    sandbox.clear_log()
    with ProcessEngine(config, processes=2, shard_size=8) as engine:
        again = list(engine.run(ids))
    assert len(sandbox.requests()) == 0
    assert {r.reason for r in again} == {"resumed"} and all(r.object_url for r in again)
    gone = next(iter(rows.values()))
    fs.rm_file(gone["object"])
    sandbox.reset_state()
    verify = _config(sandbox, out, s3, "s3://corpus/run1", download={"verify_stored": True})
    with ProcessEngine(verify, processes=2, shard_size=8) as engine:
        third = {r.work_id: r for r in engine.run(ids)}
    assert third[gone["work_id"]].reason == "ok"
    assert sum(r.reason == "resumed" for r in third.values()) == len(ids) - 1
    assert hashlib.sha256(fs.cat_file(gone["object"])).hexdigest() == gone["sha256"]


def test_a_failed_put_keeps_the_file_and_the_next_run_publishes_it(
    sandbox: Sandbox, s3: dict[str, Any], tmp_path: Path
) -> None:
    ids = _obtainable(sandbox, 3)
    out = tmp_path / "out"
    sandbox.reset_state()
    missing = _config(sandbox, out, s3, "s3://not-yet/kept")  # no such bucket: every put fails
    with ProcessEngine(missing, processes=1, shard_size=3) as engine:
        results = list(engine.run(ids))
    assert all(r.ok and r.path is not None and r.path.is_file() for r in results)
    assert all("object" not in r for r in _rows(out))
    assert json.loads((out / "summary.json").read_text())["unpublished"] == 3
    s3["fs"].mkdir("not-yet")
    with ProcessEngine(missing, processes=1, shard_size=3) as engine:
        again = list(engine.run(ids))
    assert all(r.object_url and r.path is None for r in again)
    assert _local_files(out) == []
    published = {r["work_id"]: r["object"] for r in _rows(out) if r.get("object")}
    assert set(published) == {r.work_id for r in results}
    for result in results:
        body = s3["fs"].cat_file(published[result.work_id])
        assert hashlib.sha256(body).hexdigest() == result.sha256


def test_a_filesystem_target_gets_whole_files_under_their_names(
    sandbox: Sandbox, s3: dict[str, Any], tmp_path: Path
) -> None:
    ids = _obtainable(sandbox, 6)
    share = tmp_path / "share"
    sandbox.reset_state()
    config = demo_config(
        sandbox, tmp_path / "out", cache={"enabled": False}, files_to=f"file://{share}"
    )
    with ProcessEngine(config, processes=1, shard_size=3) as engine:
        results = list(engine.run(ids))
    files = sorted(p for p in share.rglob("*") if p.is_file())
    assert len(files) == len(results) == 6
    assert not [p for p in files if ".part-" in p.name]
    by_url = {r.object_url: r.sha256 for r in results}
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == by_url[f"file://{path}"]


def test_files_to_is_checked_before_anything_runs(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scheme"):
        Config.load(None, out_dir=tmp_path / "a", files_to="bucket/prefix")
    with pytest.raises(ConfigError, match="nope"):
        ProcessEngine(Config(out_dir=tmp_path / "b", files_to="nope://bucket/prefix"), processes=1)
    # the one-process Downloader writes to out_dir only: it says where files_to is handled
    with pytest.raises(ConfigError, match="ProcessEngine"):
        Downloader(Config(out_dir=tmp_path / "c", files_to="s3://bucket/prefix"))
