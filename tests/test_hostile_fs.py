"""Links planted inside the output directory: oafetch never writes (or deletes) through them.

``--out`` itself may be a symbolic link the user made (it is resolved once, at start); inside
it, a link at any name oafetch writes — ``pdf/ html/ xml/ other/``, ``.oafetch.lock``,
``manifest.jsonl``, ``attempts.csv``, ``spans.jsonl``, ``telemetry.sqlite`` and its journals,
``summary.json`` — stops the run before anything is written (exit 2, naming each link), and a
link planted while a run is going fails that one operation instead of being followed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faults import quick_loopback
from loopback import Loopback, pdf_bytes
from oafetch import Downloader
from oafetch.cli import main
from oafetch.errors import FetchError, OafetchError
from oafetch.lock import DirLock
from oafetch.manifest import AttemptsWriter, ManifestWriter
from oafetch.storage import Storage
from oafetch.tokens import Kind, Outcome, Reason

PRECIOUS = "precious bytes that are not oafetch's\n"

# With telemetry on, so the store's files are written too; nothing reaches the internet.
TOML = (
    "[politeness]\nenabled = false\n[cache]\nenabled = false\n[robots]\nenabled = false\n"
    "[download]\nfsync = false\nmin_pdf_bytes = 100\n"
    + "".join(
        f"[resolvers.{name}]\nenabled = false\n"
        for name in (
            "unpaywall",
            "openalex",
            "crossref",
            "semantic_scholar",
            "arxiv",
            "pmc",
            "europe_pmc",
            "core",
            "zenodo",
            "figshare",
            "hal",
            "osf",
            "openaire",
            "doaj",
            "wayback",
        )
    )
)

FILES = [
    ".oafetch.lock",
    "manifest.jsonl",
    "attempts.csv",
    "spans.jsonl",
    "telemetry.sqlite",
    "telemetry.sqlite-wal",
    "telemetry.sqlite-shm",
    "summary.json",
    ".summary.json.tmp",
]
DIRS = ["pdf", "html", "xml", "other", ".cluster", "telemetry-shards"]


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside ``--out`` holding a file the user cares about."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text(PRECIOUS)
    return folder


def run_cli(tmp_path: Path, out: Path, *ids: str) -> int:
    config = tmp_path / "oafetch.toml"
    config.write_text(TOML)
    source = tmp_path / "ids.txt"
    source.write_text("".join(f"{i}\n" for i in ids))
    return main(["run", str(source), "--out", str(out), "--config", str(config), "--quiet"])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("name", FILES)
def test_a_link_at_a_file_oafetch_writes_stops_the_run_and_its_target_is_untouched(
    tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(outside / "precious.txt")
    assert run_cli(tmp_path, out, "10.1234/x") == 2
    err = capsys.readouterr().err
    assert f"{out / name}" in err and "symbolic link" in err, err
    assert str(outside / "precious.txt") in err, "the message says where the link points"
    assert "remove" in err and "--out" in err, "the message says what to do"
    assert "Traceback" not in err
    assert (outside / "precious.txt").read_text() == PRECIOUS
    assert sorted(p.name for p in out.iterdir()) == [name], "nothing was written"


@pytest.mark.parametrize("name", DIRS)
def test_a_linked_content_folder_is_neither_written_nor_cleaned(
    server: Loopback, tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    for stale in (".old.part-1a2b3c4d", ".x.pdf.link-00ff00ff"):
        (outside / stale).write_text("not a temp file of this run")
    (outside / "ab").mkdir()
    (outside / "ab" / ".y.pdf.link-12345678").write_text("nor this")
    before = snapshot(outside)
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(3000), "application/pdf")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(outside, target_is_directory=True)
    assert run_cli(tmp_path, out, server.url("/a.pdf")) == 2
    err = capsys.readouterr().err
    assert f"{out / name}" in err and "symbolic link" in err and str(outside) in err, err
    assert snapshot(outside) == before, "no file written into, or deleted from, the link target"
    assert (outside / "ab" / ".y.pdf.link-12345678").exists()
    assert server.log == [], "refused before any request"


@pytest.mark.parametrize("name", [".cluster", "telemetry-shards"])
def test_worker_processes_never_stage_or_keep_shards_through_a_link(
    server: Loopback, tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Several worker processes stage each shard under ``.cluster/`` and keep its telemetry
    store under ``telemetry-shards/``: a link planted there is refused before anything runs."""
    before, names = snapshot(outside), sorted(p.name for p in outside.iterdir())
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(3000), "application/pdf")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(outside, target_is_directory=True)
    (tmp_path / "oafetch.toml").write_text(TOML)
    (tmp_path / "ids.txt").write_text(server.url("/a.pdf") + "\n")
    argv = ["run", str(tmp_path / "ids.txt"), "--out", str(out), "--processes", "2"]
    assert main([*argv, "--config", str(tmp_path / "oafetch.toml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{out / name}" in err and "symbolic link" in err, err
    assert snapshot(outside) == before
    assert sorted(p.name for p in outside.iterdir()) == names
    assert server.log == []


def test_a_non_regular_file_at_a_name_oafetch_writes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "manifest.jsonl")  # opening it to append would hang the run
    assert run_cli(tmp_path, out, "10.1234/x") == 2
    err = capsys.readouterr().err
    assert "manifest.jsonl" in err and "not a regular file" in err, err


def test_a_hard_link_at_a_file_oafetch_appends_to_is_refused(
    tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.link(outside / "precious.txt", out / "attempts.csv")
    assert run_cli(tmp_path, out, "10.1234/x") == 2
    err = capsys.readouterr().err
    assert "attempts.csv" in err and "hard link" in err, err
    assert (outside / "precious.txt").read_text() == PRECIOUS


def test_an_out_dir_that_is_itself_a_link_is_used_as_its_target(
    server: Loopback, tmp_path: Path, make_config: Any
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(3000), "application/pdf")
    assert run_cli(tmp_path, link, server.url("/a.pdf")) == 0
    assert len(list((real / "pdf").glob("*.pdf"))) == 1
    assert (real / "summary.json").is_file() and (real / "manifest.jsonl").is_file()
    with Downloader(make_config(out_dir=link), resume=False) as dl:
        assert dl.out_dir == real.resolve(), "resolved once, at start"


# -- links planted while a run is going: each operation refuses on its own -------------------------


def swap_for_link(folder: Path, target: Path) -> None:
    folder.rename(folder.with_name(folder.name + "-moved"))
    folder.symlink_to(target, target_is_directory=True)


def test_a_content_folder_swapped_for_a_link_mid_run_fails_the_write(
    tmp_path: Path, outside: Path
) -> None:
    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    swap_for_link(tmp_path / "out" / "pdf", outside)
    before = snapshot(outside)
    with pytest.raises(FetchError) as info:
        storage.open_temp("doi:10.1234/x")
    assert info.value.reason is Reason.DISK_ERROR and "symbolic link" in str(info.value)
    assert snapshot(outside) == before


def test_a_target_folder_swapped_for_a_link_before_publishing_fails_the_publish(
    tmp_path: Path, outside: Path
) -> None:
    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    body = b"<html><body>an article</body></html>"
    temp, fh = storage.open_temp("doi:10.1234/x")
    with fh:
        fh.write(body)
    swap_for_link(tmp_path / "out" / "html", outside)
    with pytest.raises(FetchError) as info:
        storage.publish(
            temp, work_id="doi:10.1234/x", kind=Kind.HTML, sha256=hashlib.sha256(body).hexdigest()
        )
    assert "symbolic link" in str(info.value)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert not temp.exists(), "the temp file is discarded"


def test_a_link_at_a_final_path_is_replaced_not_written_through(
    tmp_path: Path, outside: Path
) -> None:
    storage = Storage(tmp_path / "out", fsync=False)
    storage.prepare()
    final = storage.target("doi:10.1234/x", Kind.PDF)
    final.symlink_to(outside / "precious.txt")
    body = b"%PDF-1.4 a document %%EOF"
    temp, fh = storage.open_temp("doi:10.1234/x")
    with fh:
        fh.write(body)
    stored = storage.publish(
        temp, work_id="doi:10.1234/x", kind=Kind.PDF, sha256=hashlib.sha256(body).hexdigest()
    )
    assert stored.path == final and not final.is_symlink() and final.read_bytes() == body
    assert (outside / "precious.txt").read_text() == PRECIOUS


def test_prepare_never_cleans_inside_a_linked_folder(tmp_path: Path, outside: Path) -> None:
    (outside / ".old.part-1a2b3c4d").write_text("not ours")
    out = tmp_path / "out"
    out.mkdir()
    (out / "xml").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OafetchError, match="symbolic link"):
        Storage(out, fsync=False).prepare()
    assert (outside / ".old.part-1a2b3c4d").exists()


def test_the_lock_never_truncates_a_linked_file(tmp_path: Path, outside: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".oafetch.lock").symlink_to(outside / "precious.txt")
    with pytest.raises(OafetchError, match="symbolic link"):
        DirLock(out).acquire()
    assert (outside / "precious.txt").read_text() == PRECIOUS


@pytest.mark.parametrize("writer", ["manifest", "attempts"])
def test_the_record_writers_never_append_through_a_link(
    tmp_path: Path, outside: Path, writer: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    name = "manifest.jsonl" if writer == "manifest" else "attempts.csv"
    (out / name).symlink_to(outside / "precious.txt")
    with pytest.raises(OafetchError, match="symbolic link"):
        if writer == "manifest":
            ManifestWriter(out / name)
        else:
            AttemptsWriter(out / name, "run-1")
    assert (outside / "precious.txt").read_text() == PRECIOUS


def test_the_span_files_are_never_written_through_a_link(tmp_path: Path, outside: Path) -> None:
    from oafetch.telemetry.jsonl_exporter import JsonlSpanExporter
    from oafetch.telemetry.sqlite_exporter import SqliteSpanExporter

    out = tmp_path / "out"
    out.mkdir()
    (out / "spans.jsonl").symlink_to(outside / "precious.txt")
    (outside / "db").write_bytes(b"")
    (out / "telemetry.sqlite").symlink_to(outside / "db")
    jsonl = JsonlSpanExporter(out / "spans.jsonl")
    with pytest.raises(OSError, match="symbolic link"):
        jsonl.write([{"name": "x"}])  # type: ignore[list-item]
    jsonl.shutdown()
    sqlite = SqliteSpanExporter(out / "telemetry.sqlite")
    with pytest.raises(OSError, match="symbolic link"):
        sqlite.prepare()
    sqlite.shutdown()
    assert (outside / "precious.txt").read_text() == PRECIOUS
    assert (outside / "db").read_bytes() == b""


def test_summary_json_is_never_written_through_a_planted_temp_link(
    tmp_path: Path, outside: Path, make_config: Any
) -> None:
    dl = Downloader(make_config(), resume=False)
    (dl.out_dir / ".summary.json.tmp").symlink_to(outside / "precious.txt")
    dl.close()
    assert (outside / "precious.txt").read_text() == PRECIOUS
    assert (dl.out_dir / "summary.json").is_file()
    assert not (dl.out_dir / ".summary.json.tmp").exists()


def test_a_normal_run_still_stores_and_resumes(
    server: Loopback, tmp_path: Path, make_config: Any
) -> None:
    server.routes["/a.pdf"] = lambda h: h.reply(200, pdf_bytes(3000), "application/pdf")
    server.routes["/b.pdf"] = lambda h: h.reply(200, pdf_bytes(3000), "application/pdf")
    config = make_config(download={"content_addressed": True})
    with Downloader(config, resume=False) as dl:
        first = [dl.fetch(server.url("/a.pdf")), dl.fetch(server.url("/b.pdf"))]
    assert [r.outcome for r in first] == [Outcome.SUCCESS, Outcome.SUCCESS]
    with Downloader(config) as dl:
        again = dl.fetch(server.url("/a.pdf"))
    assert again.reason is Reason.RESUMED and again.path == first[0].path
