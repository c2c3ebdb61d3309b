"""``state.sqlite``: resume and dedupe look-ups from an indexed on-disk store, not dicts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from loopback import Handler, Loopback, pdf_bytes
from oafetch import outcomes, works
from oafetch.cli import build_parser, load_config
from oafetch.downloader import Downloader
from oafetch.state import StateStore
from oafetch.tokens import DedupeAction, Reason
from oafetch.works import parse_work


def _row(work_id: str, outcome: str = "success", **extra: Any) -> str:
    row = {"work_id": work_id, "outcome": outcome, **extra}
    if outcome == "success":
        row.setdefault("path", f"pdf/{work_id.replace(':', '_')}.pdf")
        row.setdefault("sha256", "a" * 64)
        row.setdefault("bytes", 10)
    return json.dumps(row) + "\n"


def _serve(server: Loopback, paths: dict[str, bytes]) -> None:
    for path, body in paths.items():

        def route(h: Handler, body: bytes = body) -> None:
            h.reply(200, body, "application/pdf")

        server.routes[path] = route


# -- the store on its own ---------------------------------------------------------------------


def test_latest_success_wins_and_a_later_failure_never_hides_it(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text(
        _row("doi:10.1/a", path="pdf/old.pdf")
        + _row("doi:10.1/a", path="pdf/new.pdf", sha256="b" * 64)
        + _row("doi:10.1/a", "error", reason="timeout")
        + _row("doi:10.1/b", "error")
        + _row("doi:10.1/c", dry_run=True)
    )
    store = StateStore(tmp_path)
    try:
        prior = store.prior("doi:10.1/a")
        assert prior is not None and prior.path == "pdf/new.pdf" and prior.sha256 == "b" * 64
        assert prior.row["bytes"] == 10
        assert store.prior("doi:10.1/b") is None and store.prior("doi:10.1/c") is None
        assert store.blob("a" * 64) == "pdf/old.pdf", "the first file with those bytes"
        assert store.count() == (1, 2)
    finally:
        store.close()
    assert (tmp_path / "state.sqlite").is_file()


def test_reopening_reads_only_the_rows_appended_since(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(_row(f"doi:10.1/{i}", sha256=f"{i:064x}") for i in range(50)))
    store = StateStore(tmp_path)
    assert store.caught_up == 50
    store.close()
    with manifest.open("a") as fh:  # a killed run's rows, never indexed
        fh.write(_row("doi:10.1/new", sha256="f" * 64))
    store = StateStore(tmp_path)
    try:
        assert store.caught_up == 1, "only the tail is read again"
        assert store.prior("doi:10.1/new") is not None and store.prior("doi:10.1/3") is not None
    finally:
        store.close()
    store = StateStore(tmp_path)
    assert store.caught_up == 0
    store.close()


def test_a_replaced_manifest_is_indexed_again_from_its_start(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(_row("doi:10.1/gone") + _row("doi:10.1/kept"))
    StateStore(tmp_path).close()
    manifest.unlink()
    manifest.write_text(_row("doi:10.1/kept") + _row("doi:10.1/other") + _row("doi:10.1/x"))
    store = StateStore(tmp_path)
    try:
        assert store.caught_up == 3
        assert store.prior("doi:10.1/gone") is None
        assert store.prior("doi:10.1/other") is not None
    finally:
        store.close()


def test_a_damaged_index_is_rebuilt_from_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text(_row("doi:10.1/a"))
    (tmp_path / "state.sqlite").write_bytes(b"not a database at all" * 100)
    store = StateStore(tmp_path)
    try:
        assert store.prior("doi:10.1/a") is not None
    finally:
        store.close()


def test_rows_recorded_during_a_run_are_found_before_the_run_closes(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    try:
        store.record(json.loads(_row("doi:10.1/z", sha256="c" * 64)))
        store.add_blob("c" * 64, "pdf/z.pdf")
        store.record(json.loads(_row("doi:10.1/y", "error")))
        store.add_blob("d" * 64, "pdf/d.pdf")
        assert store.prior("doi:10.1/z") is not None and store.prior("doi:10.1/y") is None
        assert store.blob("c" * 64) and store.blob("d" * 64) == "pdf/d.pdf"
    finally:
        store.close()


def test_the_works_a_run_met_are_kept_per_open_not_in_the_index(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    try:
        assert store.first_in_run("doi:10.1/a") is True
        assert store.first_in_run("doi:10.1/a") is False
        assert store.first_in_run("doi:10.1/b") is True
        for n in range(600):  # past a commit of the index: the run's table survives it
            store.add_blob(f"{n:064x}", f"pdf/{n}.pdf")
        assert store.first_in_run("doi:10.1/b") is False
    finally:
        store.close()
    again = StateStore(tmp_path)  # the next run starts afresh
    try:
        assert again.first_in_run("doi:10.1/a") is True
        assert "run_works" not in {
            r[0]
            for r in sqlite3.connect(tmp_path / "state.sqlite").execute(
                "SELECT name FROM sqlite_master"
            )
        }
    finally:
        again.close()


def test_work_ids_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = works.redact_url

    def counting(url: str) -> str:
        calls.append(url)
        return real(url)

    monkeypatch.setattr(works, "redact_url", counting)
    work = parse_work("https://example.org/paper.pdf?key=secret")
    ids = {work.work_id for _ in range(5)} | {work.artifact_id for _ in range(5)}
    assert len(ids) == 2 and len(calls) == 1
    assert work == parse_work("https://example.org/paper.pdf?key=secret")


def test_verify_stored_is_a_flag_and_a_config_key(tmp_path: Path) -> None:
    args = build_parser().parse_args(["run", "ids.txt", "--out", str(tmp_path), "--verify-stored"])
    assert load_config(args).download.verify_stored is True
    args = build_parser().parse_args(["run", "ids.txt", "--out", str(tmp_path)])
    assert load_config(args).download.verify_stored is False


# -- through the pipeline, on loopback --------------------------------------------------------


def test_resume_comes_from_the_store_and_does_not_rehash(
    server: Loopback, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = {f"/w{i}.pdf": pdf_bytes(3000 + i, seed=i) for i in range(4)}
    _serve(server, bodies)
    urls = [server.url(p) for p in bodies]
    config = make_config()
    with Downloader(config) as dl:
        assert all(r.ok for r in dl.run(urls))
    with sqlite3.connect(config.out_dir / "state.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM works").fetchone()[0] == 4
    hashed: list[Path] = []
    monkeypatch.setattr(outcomes, "sha256_file", lambda p: hashed.append(p) or "")
    hits = len(server.log)
    with Downloader(config) as dl:
        again = list(dl.run(urls))
    assert [r.reason for r in again] == [Reason.RESUMED] * 4
    assert hashed == [] and len(server.log) == hits


def test_verify_stored_rehashes_and_fetches_a_tampered_file_again(
    server: Loopback, make_config: Any
) -> None:
    bodies = {f"/w{i}.pdf": pdf_bytes(3000 + i, seed=i) for i in range(3)}
    _serve(server, bodies)
    urls = [server.url(p) for p in bodies]
    config = make_config()
    with Downloader(config) as dl:
        first = {r.work_id: r for r in dl.run(urls)}
    victim = first[f"url:{urls[1]}"].path
    assert victim is not None
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF  # same size, different bytes
    victim.write_bytes(bytes(data))
    with Downloader(config) as dl:  # size checked only: the tampered file passes
        assert all(r.reason is Reason.RESUMED for r in dl.run(urls))
    with Downloader(make_config(download={"verify_stored": True})) as dl:
        again = {r.work_id: r for r in dl.run(urls)}
    assert again[f"url:{urls[1]}"].reason is not Reason.RESUMED and again[f"url:{urls[1]}"].ok
    assert victim.read_bytes() == bodies["/w1.pdf"], "fetched again and stored intact"
    assert [again[f"url:{u}"].reason for u in (urls[0], urls[2])] == [Reason.RESUMED] * 2


def test_dedupe_by_sha256_across_runs_comes_from_the_store(
    server: Loopback, make_config: Any
) -> None:
    body = pdf_bytes(5000, seed=7)
    _serve(server, {"/a.pdf": body, "/b.pdf": body})
    config = make_config()
    with Downloader(config) as dl:
        first = dl.fetch(server.url("/a.pdf"))
    assert first.ok
    with Downloader(config) as dl:
        assert dl.state.blob(first.sha256 or "") is not None
        second = dl.fetch(server.url("/b.pdf"))
    assert second.ok and second.dedupe_action == DedupeAction.LINKED.value
    assert second.path is not None and first.path is not None
    assert second.path.stat().st_ino == first.path.stat().st_ino


def test_one_url_for_two_works_is_fetched_once_and_indexed_for_both(
    server: Loopback, make_config: Any
) -> None:
    body = pdf_bytes(4000, seed=3)
    _serve(server, {"/same.pdf": body})
    config = make_config()
    with Downloader(config) as dl:
        a = dl.fetch(server.url("/same.pdf"))
        b = dl.fetch(server.url("/same.pdf?copy=1"))
    assert a.ok and b.ok and a.sha256 == b.sha256
    with sqlite3.connect(config.out_dir / "state.sqlite") as conn:
        urls = [r[0] for r in conn.execute("SELECT url FROM works ORDER BY url")]
        blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    assert urls == [server.url("/same.pdf"), server.url("/same.pdf?copy=1")]
    assert blobs == 1, "identical bytes are one blob"


def test_crash_recovery_reads_the_manifest_only_from_the_last_clean_close(
    server: Loopback, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oafetch.telemetry import recovery

    _serve(server, {"/a.pdf": pdf_bytes(3000, seed=1)})
    config = make_config(telemetry={"enabled": True, "jsonl": False})
    with Downloader(config) as dl:
        assert dl.fetch(server.url("/a.pdf")).ok
    manifest = config.out_dir / "manifest.jsonl"
    clean = manifest.stat().st_size
    with manifest.open("a") as fh:  # a row a killed run wrote before its downloads row
        fh.write(_row("doi:10.1/killed", run_id="killed-run", path="pdf/a.pdf"))
    offsets: list[int] = []
    real = recovery.read_manifest

    def spy(path: Path, *, offset: int = 0) -> Any:
        offsets.append(offset)
        return real(path, offset=offset)

    monkeypatch.setattr(recovery, "read_manifest", spy)
    with Downloader(config):
        pass
    assert offsets == [clean], "only the rows after the last clean close are read"
    with sqlite3.connect(config.out_dir / "telemetry.sqlite") as conn:
        found = conn.execute(
            "SELECT dedupe_action FROM downloads WHERE work_id = 'doi:10.1/killed'"
        ).fetchall()
    assert found == [("recovered",)]


def test_temp_names_count_and_concurrent_publishes_of_one_body_store_it_once(
    tmp_path: Path,
) -> None:
    import hashlib
    import re
    from concurrent.futures import ThreadPoolExecutor

    from oafetch.storage import Storage
    from oafetch.tokens import Kind

    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    body = pdf_bytes(2000, seed=5)
    sha = hashlib.sha256(body).hexdigest()

    def one(i: int) -> tuple[str, DedupeAction]:
        temp, fh = storage.open_temp(f"doi:10.1/w{i}")
        with fh:
            fh.write(body)
        stored = storage.publish(temp, work_id=f"doi:10.1/w{i}", kind=Kind.PDF, sha256=sha)
        return temp.name, stored.dedupe

    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(one, range(40)))
    serials = sorted(
        int(re.fullmatch(r".*\.part-[0-9a-f]+-([0-9a-f]+)", n)[1], 16) for n, _ in done
    )  # type: ignore[index]
    # one counter for body and link temps: 40 bodies and 39 links use 1 … 79
    assert len(set(serials)) == 40 and serials[-1] <= 79, "temp names are a per-run counter"
    actions = [a for _, a in done]
    assert actions.count(DedupeAction.STORED) == 1 and actions.count(DedupeAction.LINKED) == 39
    files = list((tmp_path / "out" / "pdf").glob("*.pdf"))
    assert len(files) == 40 and len({f.stat().st_ino for f in files}) == 1
