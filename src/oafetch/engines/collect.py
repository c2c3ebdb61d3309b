"""The driver's side of a cluster run: one output directory, written by one process.

:class:`Collector` holds the output directory's lock for the whole run, skips the works an
earlier run already stored (resume), and publishes each finished shard: every stored file moves
from the shard's staging directory to the same relative path in the output directory with
``os.replace`` (atomic on one filesystem), *then* the shard's manifest and attempt rows are
appended. A work is published at most once per run (by work id; the run's ids are kept in a
temporary table of the state store, not in memory), so a shard run twice — its
first worker died after finishing — adds nothing. A driver killed between the move and the row
leaves a file no row names; the next run fetches that work again and replaces it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oafetch import outcomes, outdir
from oafetch._version import __version__
from oafetch.config import Config
from oafetch.engines.resumed import SHARD_NAME, ResumedRecorder
from oafetch.engines.shards import STAGING_DIR, ShardResult, staging_root
from oafetch.lock import DirLock
from oafetch.manifest import ATTEMPTS_HEADER, ManifestWriter
from oafetch.objectstore import ObjectStore, PublishError
from oafetch.results import DownloadResult
from oafetch.runstats import RunStats
from oafetch.telemetry.merge import ShardAppender
from oafetch.telemetry.store import StoreError
from oafetch.urls import redact_url
from oafetch.works import InputLine

log = logging.getLogger("oafetch")

#: Bytes of a shard's ``spans.jsonl`` copied at a time into the run's.
SPANS_BLOCK = 1 << 22


class Collector:
    """Publishes shards into ``config.out_dir``; ``close()`` writes ``summary.json``."""

    def __init__(
        self, config: Config, run_id: str, *, resume: bool = True, engine: str = "ray"
    ) -> None:
        self.config = config
        self.engine = engine
        self.run_id = run_id
        # files_to: where the workers publish the files (None: this output directory)
        self.objects = (
            ObjectStore(config.files_to, config.files_options) if config.files_to else None
        )
        self.unpublished = 0
        self.out_dir = outdir.resolve(config.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        outdir.check_layout(self.out_dir)
        self._lock = DirLock(self.out_dir)
        self._lock.acquire()
        try:
            # a dead driver's shards: nothing in them was published, so nothing is lost
            shutil.rmtree(self.out_dir / STAGING_DIR, ignore_errors=True)
            from oafetch.state import StateStore  # sqlite3: loaded when a run starts

            self.resume = resume
            self.state = StateStore(self.out_dir)  # the manifest's index: resume and dedupe
            self.manifest = ManifestWriter(self.out_dir / "manifest.jsonl", index=self.state)
            self._attempts = outdir.open_append(self.out_dir / "attempts.csv", newline="")
            if os.fstat(self._attempts.fileno()).st_size == 0:
                outdir.append_whole(self._attempts.fileno(), (ATTEMPTS_HEADER + "\n").encode())
        except BaseException:
            if hasattr(self, "state"):
                self.state.close(manifest_complete=False)
            self._lock.release()
            raise
        self.stats = RunStats(run_id)
        self.spending: dict[str, dict[str, Any]] = {}
        self.shards_published = 0
        self.resumed: list[DownloadResult] = []  # resumed works not yet handed to the caller
        self.nodes: Counter[str] = Counter()  # node → shards it ran (published)
        # the resumed works' telemetry (downloads rows, reason resumed), a shard of its own
        self._recorder = ResumedRecorder(
            config, run_id, staging_root(self.out_dir, run_id) / SHARD_NAME
        )
        self._spans: int | None = None  # the run's spans.jsonl, opened at the first shard
        self._store: ShardAppender | None = None  # the run's telemetry.sqlite, the same
        self._closed = False

    def pending(
        self, lines: Iterator[InputLine], carrier: dict[str, str] | None = None
    ) -> Iterator[InputLine]:
        """The lines still to do; works an earlier run stored (file intact) count as resumed
        (and are recorded in telemetry under ``carrier``, the driver's trace context)."""
        if carrier is not None:
            self._recorder.carrier = dict(carrier)
        for line in lines:
            work = line.work
            if work is not None and (done := self._resumed(line)) is not None:
                relpath = (
                    os.path.relpath(done.path, self.out_dir)
                    if done.path
                    else self._relpath_of(done.object_url)
                )
                self._recorder.record(done, work, relpath)
                self.stats.add(done)
                self.state.first_in_run(work.work_id)
                self.resumed.append(done)
                continue
            yield line

    def _relpath_of(self, object_url: str | None) -> str | None:
        if self.objects is None or not object_url:
            return None
        return object_url.removeprefix(self.objects.url + "/")

    def take_resumed(self) -> list[DownloadResult]:
        """The works found stored since the last call (results like the others)."""
        taken, self.resumed = self.resumed, []
        return taken

    def _resumed(self, line: InputLine) -> DownloadResult | None:
        assert line.work is not None
        prior = self.state.prior(line.work.work_id) if self.resume else None
        verify = self.config.download.verify_stored
        if self.objects is None or prior is None or not prior.path:
            return outcomes.resumed(prior, self.out_dir, line.work, verify=verify)
        local = outcomes.resumed(prior, self.out_dir, line.work, verify=verify)
        if local is not None:  # kept here when its put failed: publish it now
            return self._publish_kept(local, prior.path)
        size = prior.row.get("bytes")
        if verify and (self.objects.size(prior.path) != size or size is None):
            return None  # gone or changed: fetch again
        # the manifest says it was published (--verify-stored reads each object's size back)
        return outcomes.resumed_object(prior, line.work, self.objects.url_of(prior.path))

    def _publish_kept(self, result: DownloadResult, relpath: str) -> DownloadResult:
        """Put a file an earlier run kept here (its put had failed); its row gains ``object``."""
        assert self.objects is not None and result.path is not None
        try:
            url = self.objects.publish(result.path, relpath, result.path.stat().st_size)
        except PublishError as exc:
            log.warning("%s (kept in %s)", exc, self.out_dir)
            self.unpublished += 1
            return result
        self.manifest.write(
            {
                "run_id": self.run_id,
                "work_id": result.work_id,
                "resolver": result.resolver,
                "url": result.url,
                "outcome": str(result.outcome),
                "ok": True,
                "reason": str(result.reason),
                "path": relpath,
                "content_type": result.content_type,
                "bytes": result.bytes,
                "sha256": result.sha256,
                "config_hash": self.config.config_hash,
                "dedupe_action": result.dedupe_action,
                "message": "kept here by an earlier run; published now",
                "object": url,
            }
        )
        result.path.unlink()
        return dataclasses.replace(result, path=None, object_url=url)

    def publish(self, shard: ShardResult) -> list[DownloadResult]:
        """Move a finished shard's files into place, then append its rows; return its results."""
        staging = Path(shard.staging)
        rows = {str(r.get("work_id")): r for r in shard.manifest_rows}
        fresh: list[DownloadResult] = []
        for result in shard.results:
            if not self.state.first_in_run(result.work_id):
                continue  # already published in this run (a shard done twice, a repeated id)
            row = rows.get(result.work_id)
            relpath = row.get("path") if row else None
            if row is not None and row.get("object"):  # a worker put it in files_to
                result = dataclasses.replace(result, path=None, object_url=row["object"])
            elif relpath:
                target = self.out_dir / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                source = staging / relpath
                if source.exists():
                    os.replace(source, target)
                if row is not None and row.get("sha256") and target.is_file():
                    self.state.add_blob(str(row["sha256"]), str(relpath))
                result = dataclasses.replace(result, path=target)
            if row is not None:
                self._keep_quarantined(staging, row)
                self.manifest.write(row)
            self.stats.add(result)
            fresh.append(result)
        self.unpublished += len(shard.unpublished)  # kept here; the next run puts them
        if shard.attempt_lines:
            outdir.append_whole(self._attempts.fileno(), "".join(shard.attempt_lines).encode())
        self._keep_telemetry(staging, shard.index)
        for source, spent in shard.spending.items():
            total = self.spending.setdefault(source, {"calls": 0, "usd": 0.0, "refused": 0})
            for key in ("calls", "usd", "refused"):
                total[key] = total.get(key, 0) + spent.get(key, 0)
        if self.config.download.fsync:
            self.manifest.close(fsync=True)  # durable before the staging copy goes
            self.manifest = ManifestWriter(self.out_dir / "manifest.jsonl", index=self.state)
        shutil.rmtree(staging, ignore_errors=True)
        self.shards_published += 1
        self.nodes[shard.node] += 1
        return fresh

    def _keep_quarantined(self, staging: Path, row: dict[str, Any]) -> None:
        """Move the files a shard quarantined for this work (and their evidence) to the output
        directory's ``quarantine/``, where the row says they are (kept here with files_to too:
        they are for a person to look at)."""
        for relpath in row.get("quarantined") or ():
            for name in (str(relpath), str(Path(relpath).with_suffix(".json"))):
                source, target = staging / name, self.out_dir / name
                if source.is_file() and not source.is_symlink():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source, target)

    def _keep_telemetry(self, staging: Path, index: int) -> None:
        store = staging / "telemetry.sqlite"
        if store.exists():
            shards = self.out_dir / outdir.TELEMETRY_SHARDS
            shards.mkdir(exist_ok=True)
            kept = shards / f"{self.run_id}-{index:06d}.sqlite"
            os.replace(store, kept)
            self._append_store(kept)
        self._append_spans(staging / outdir.SPANS)

    def _append_store(self, shard: Path) -> None:
        """Append a shard's telemetry rows to the run's ``telemetry.sqlite`` (telemetry never
        fails a run: a shard that cannot be appended stays for ``oafetch telemetry merge``)."""
        try:
            if self._store is None:
                target = self.out_dir / "telemetry.sqlite"
                outdir.check_sqlite(target)  # no link at the database or its journals
                self._store = ShardAppender(target, out_dir=self.out_dir)
            self._store.append(shard)
        except (StoreError, OSError, sqlite3.Error) as exc:
            log.warning(
                "telemetry of %s not merged (`oafetch telemetry merge %s` retries): %s",
                shard.name,
                self.out_dir,
                exc,
            )

    def _append_spans(self, source: Path) -> None:
        """Append a shard's ``spans.jsonl`` to the run's, in whole lines (as one process
        writes it); telemetry never fails a run."""
        if not source.is_file():
            return
        try:
            if self._spans is None:
                self._spans = outdir.open_fd(
                    self.out_dir, outdir.SPANS, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                )
            with source.open("rb") as fh:
                rest = b""
                while block := fh.read(SPANS_BLOCK):
                    block = rest + block
                    cut = block.rfind(b"\n") + 1
                    if cut:
                        outdir.append_whole(self._spans, block[:cut])
                    rest = block[cut:]
                if rest.strip():  # a last line without its newline
                    outdir.append_whole(self._spans, rest + b"\n")
        except OSError as exc:
            log.warning("spans of %s not appended to %s: %s", source.parent, outdir.SPANS, exc)

    def _finish_telemetry(self) -> None:
        """The run's ``run_summary`` row from its merged events (telemetry never fails a run)."""
        if self._store is None:
            return
        try:
            self._store.finish()
        except (StoreError, OSError, sqlite3.Error) as exc:
            self._store.close()
            log.warning("telemetry summary not written (oafetch telemetry merge retries): %s", exc)

    def close(self, *, interrupted: bool = False) -> dict[str, Any]:
        """Write ``summary.json``, drop the staging directories, release the lock."""
        if self._closed:
            return {}
        self._closed = True
        try:
            summary = self.stats.as_dict()
            if self.spending:
                summary["spending"] = self.spending
            summary["config_hash"] = self.config.config_hash
            summary["oafetch_version"] = __version__
            summary["engine"] = self.engine
            if self.objects is not None:
                summary["files_to"] = redact_url(self.objects.url)
                summary["unpublished"] = self.unpublished
            summary["interrupted"] = interrupted
            self.manifest.close(fsync=self.config.download.fsync)
            self.state.close()
            self._attempts.flush()
            self._attempts.close()
            outdir.write_atomic(
                self.out_dir,
                outdir.SUMMARY,
                (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
                fsync=self.config.download.fsync,
            )
            resumed = self._recorder.close(self.out_dir / outdir.TELEMETRY_SHARDS)
            if resumed is not None:
                self._append_store(resumed)
                self._append_spans(self._recorder.staging / outdir.SPANS)
            shutil.rmtree(self.out_dir / STAGING_DIR, ignore_errors=True)
            self._finish_telemetry()
        finally:
            if self._spans is not None:
                os.close(self._spans)
                self._spans = None
            self.state.close(manifest_complete=False)  # a no-op after the close above
            self._lock.release()
        return summary
