"""The front door of the library: :class:`Downloader` runs works through the pipeline.

One ``Downloader`` is one *run*: one output directory (locked), one HTTP client, one
``oafetch.run`` span, one ``manifest.jsonl``/``attempts.csv`` appender, one ``summary.json`` at
close. ``fetch()`` does one work on the calling thread; ``run()`` streams many through the
scheduler and yields results as they finish.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, Status, StatusCode

from oafetch import outcomes, outdir
from oafetch._version import __version__
from oafetch.config import Config
from oafetch.errors import ConfigError
from oafetch.fallback import Fallback
from oafetch.fallback_state import WorkProgress
from oafetch.http.client import HttpClient
from oafetch.http.ratelimit import RateLimiter
from oafetch.identity_gate import identity_fields
from oafetch.learning import learner as learning
from oafetch.lock import DirLock
from oafetch.manifest import AttemptRow, AttemptsWriter, ManifestWriter, PriorOutcome
from oafetch.oldest_first import OldestFirstPool
from oafetch.resolvers.base import Resolver
from oafetch.resolvers.registry import build_resolvers, check_tiers, resolver_classes
from oafetch.results import DownloadResult
from oafetch.runstats import RunStats
from oafetch.storage import Storage
from oafetch.telemetry import names, traces
from oafetch.telemetry.context import identity
from oafetch.telemetry.runtime import Telemetry
from oafetch.tokens import Outcome, Reason
from oafetch.urls import redact_url
from oafetch.works import InputLine, Work, as_lines, as_works, take

log = logging.getLogger("oafetch")

_MIME = {"pdf": "application/pdf", "html": "text/html", "xml": "application/xml"}


@dataclass(frozen=True)
class Parked:
    """A work waiting for a host's next slot; the scheduler resumes it at ``not_before``."""

    line: InputLine
    progress: WorkProgress
    not_before: float  # time.monotonic()
    started: float  # time.perf_counter() of the work's first step (for time-to-first-PDF)
    span: SpanContext | None = None  # the parked work span: the resumed one continues its trace


def new_run_id() -> str:
    """A sortable, unique run id: ``20261122T010203-a1b2c3``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


class Downloader:
    """Fetch open-access full texts into ``config.out_dir``.

    Args:
        config: the configuration (default: ``Config.load()``).
        resume: skip works the output directory's manifest already has stored and verified.
        resolvers: replace the configured resolvers (plug-ins, tests).
        transport: innermost httpx transport (tests).
        limiter: a rate limiter shared with other processes (``oafetch.engines``: one budget
            per host for a whole cluster); default: the run's own.
        telemetry: ``None`` sets up oafetch's own providers per ``config.telemetry``; pass
            ``Telemetry.noop()`` to disable, or a handle from ``oafetch.telemetry.install``.

    Raises:
        OutputDirLocked: another run is using the output directory.
        OutputDirError: a name oafetch writes in the output directory is a link (or another
            unsafe file).
        ConfigError: a resolver table or a fallback tier names an unknown source, or a resolver
            table an unknown key.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        resume: bool = True,
        resolvers: dict[str, Resolver] | None = None,
        transport: Any = None,
        telemetry: Telemetry | None = None,
        cache: Any = None,
        run_id: str | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config or Config.load()
        if self.config.files_to:
            raise ConfigError(
                f"files_to ({self.config.files_to}) is published by the engines: use "
                "`oafetch run`, or oafetch.engines.ProcessEngine / RayEngine in a library"
            )
        self.config_hash = self.config.config_hash  # every manifest row carries it
        # before anything exists on disk: a misspelt tier source would fail every work silently
        check_tiers(self.config, {*resolver_classes(), *(resolvers or {})})
        self.run_id = run_id or new_run_id()
        # ``--out`` may be a link the user made: resolved once, here; links planted inside it
        # are refused before anything is written (oafetch.outdir).
        self.out_dir = outdir.resolve(self.config.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        outdir.check_layout(self.out_dir)
        self._lock = DirLock(self.out_dir)
        self._lock.acquire()
        self._closed = False
        self.list_only = False  # set by run(list_only=True): ask every source, download nothing
        self.cancel = threading.Event()
        # Set when outputs cannot be written (a full disk): the batch stops, resumable.
        self.disk_error: str | None = None
        try:
            from oafetch.state import StateStore  # sqlite3: loaded when a run starts, not on import

            self.resume = resume
            # resume and dedupe look-ups, indexed on disk (memory stays flat at any scale)
            self.state = StateStore(self.out_dir)
            self._session: Any = None
            if telemetry is None and self.config.telemetry.enabled:
                from oafetch.telemetry.recovery import recover_downloads
                from oafetch.telemetry.setup import TelemetrySession

                if self.config.telemetry.sqlite:  # a killed run's last rows, from the manifest
                    recover_downloads(
                        self.out_dir / "telemetry.sqlite",
                        self.out_dir / "manifest.jsonl",
                        offset=self.state.telemetry_offset(),
                    )

                self._session = TelemetrySession.start(self.config.telemetry, self.out_dir)
                telemetry = self._session.telemetry
            self.telemetry = telemetry or Telemetry.noop()
            if resolvers is None:
                resolvers, self.notes = build_resolvers(self.config)
            else:
                self.notes = []
            for note in self.notes:
                log.warning("%s", note)
            if cache is None and self.config.cache.enabled:
                from oafetch.http.cache import build_cache

                cache = build_cache(self.config, self.telemetry)
            secrets_ = tuple(
                s for s in (getattr(r, "secret", None) for r in resolvers.values()) if s
            )
            self.http = HttpClient(
                self.config,
                self.telemetry,
                transport=transport,
                cache=cache,
                cancel=self.cancel,
                secrets=secrets_,
                limiter=limiter,
            )
            self.storage = Storage(
                self.out_dir,
                fsync=self.config.download.fsync,
                content_addressed=self.config.download.content_addressed,
                index=self.state,
            )
            self.storage.prepare()
            self.manifest = ManifestWriter(self.out_dir / "manifest.jsonl", index=self.state)
            self.attempts = AttemptsWriter(self.out_dir / "attempts.csv", self.run_id)
            self.stats = RunStats(self.run_id)
            self._pool = OldestFirstPool(
                max(4, self.config.workers * 2), thread_name_prefix="oafetch-source"
            )
            self.fallback = Fallback(
                resolvers,
                http=self.http,
                storage=self.storage,
                config=self.config,
                pool=self._pool,
                record=self._record_attempt,
                learner=learning.for_run(self.config, resolvers, self.out_dir),
            )
            self._run_span = self.telemetry.tracer.start_span(
                names.SPAN_RUN,
                context=traces.run_parent(),
                attributes={
                    names.RUN_ID: self.run_id,
                    names.CONFIG_HASH: self.config_hash,
                    names.VERSION: __version__,
                },
            )
        except BaseException:
            state = getattr(self, "state", None)
            if state is not None:
                state.close(manifest_complete=False)
            self._lock.release()
            raise

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> dict[str, Any]:
        """End the run: flush telemetry (run_summary), write ``summary.json``, release the lock."""
        if self._closed:
            return {}
        self._closed = True
        summary = self.stats.as_dict()
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._run_span.set_attribute(
                names.OUTCOME, "interrupted" if self.cancel.is_set() else "done"
            )
            if spending := self.spending():  # → run_summary.spend_calls / spend_usd
                calls = sum(int(s["calls"]) for s in spending.values())
                usd = round(sum(float(s["usd"]) for s in spending.values()), 4)
                self._run_span.set_attributes({names.SPEND_CALLS: calls, names.SPEND_USD: usd})
                summary["spending"] = spending
            self._run_span.end()
            self.http.close()
            self.storage.sync()
            self.manifest.close(fsync=self.config.download.fsync)
            self.attempts.close(fsync=self.config.download.fsync)
            telemetry_complete = False
            if self._session is not None:
                self._session.flush()
                summary["spans_dropped"] = self._session.spans_dropped
                telemetry_complete = self.config.telemetry.sqlite and not summary["spans_dropped"]
            self.state.close(telemetry_complete=telemetry_complete)
            summary["config_hash"] = self.config_hash
            summary["oafetch_version"] = __version__
            outdir.write_atomic(
                self.out_dir,
                outdir.SUMMARY,
                (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode(),
                fsync=self.config.download.fsync,
            )
        finally:
            if self._session is not None:
                self._session.shutdown()
            self.state.close(manifest_complete=False)  # a no-op after the close above
            self._lock.release()
        return summary

    def spending(self) -> dict[str, dict[str, Any]]:
        """What each billed source spent so far in this run (``summary.json`` ``spending``)."""
        found = {r.name: r.spending() for r in self.fallback.resolvers.values()}
        return {name: figures for name, figures in found.items() if figures is not None}

    # -- one work -------------------------------------------------------------------------------
    def fetch(self, work: str | Work, *, dry_run: bool = False) -> DownloadResult:
        """Fetch one work on the calling thread (inside the caller's span, if there is one)."""
        item = work if isinstance(work, Work) else None
        line = InputLine(1, item) if item else next(iter(as_works([str(work)])))
        return self.process(line, dry_run=dry_run, caller=traces.caller_context())

    def process(
        self, line: InputLine, *, dry_run: bool = False, caller: Context | None = None
    ) -> DownloadResult:
        """Run one input line through the pipeline and record its outcome. Never raises.

        ``caller``: a context holding the span the work's trace continues (default: the work
        starts a trace of its own, linked to the run's span)."""
        result = self.step(line, dry_run=dry_run, caller=caller)
        assert isinstance(result, DownloadResult)  # without defer_after_s nothing is parked
        return result

    def step(
        self,
        line: InputLine,
        *,
        dry_run: bool = False,
        parked: Parked | None = None,
        defer_after_s: float | None = None,
        caller: Context | None = None,
    ) -> DownloadResult | Parked:
        """One scheduling step of a work: a final result, or :class:`Parked` to resume later."""
        if line.work is None:
            result = DownloadResult(
                work_id=f"line:{line.line}",
                outcome=Outcome.ERROR,
                reason=Reason.BAD_INPUT,
                message=f"line {line.line}: {line.error}",
                line=line.line,
            )
            log.warning("input line %s skipped: %s", line.line, line.error)
            self.stats.add(result)
            row = result.to_dict()  # the manifest is the complete record, bad lines included
            row.update(run_id=self.run_id, ok=False, config_hash=self.config_hash, dry_run=dry_run)
            self.manifest.write(row)
            return result
        parent, links = traces.work_parent(
            self._run_span, caller=caller, resumed_from=parked.span if parked else None
        )
        token = otel_context.attach(parent)
        try:
            with identity(
                run_id=self.run_id, work_id=line.work.work_id, artifact_id=line.work.artifact_id
            ):
                outcome = self._process(line, dry_run, parked, defer_after_s, links)
            if isinstance(outcome, Parked):
                return outcome
            result = outcome
        except OSError as exc:  # e.g. the manifest append failing on a full disk
            log.error("work %s: cannot write its outputs: %s", line.work.work_id, exc)
            result = DownloadResult(
                work_id=line.work.work_id,
                outcome=Outcome.ERROR,
                reason=Reason.DISK_ERROR,
                message=f"cannot write outputs in {self.out_dir}: {exc.strerror or exc}",
                line=line.line,
            )
        except Exception as exc:  # the batch must go on whatever happens to one work
            log.exception("work %s failed unexpectedly", line.work.work_id)
            result = DownloadResult(
                work_id=line.work.work_id,
                outcome=Outcome.ERROR,
                reason=Reason.DOWNLOAD_ERROR,
                message=f"internal error: {type(exc).__name__}: {exc}",
                line=line.line,
            )
        finally:
            otel_context.detach(token)
        if result.reason is Reason.DISK_ERROR:
            self._stop_for_disk(result.message)
        self.stats.add(result)
        return result

    def _stop_for_disk(self, message: str) -> None:
        """Stop the batch at the first output that cannot be written: carrying on would only
        fail every later work the same way, and leave outcomes recorded nowhere. Works not in
        the manifest are done again by the next run with the same ``--out``."""
        if self.disk_error is None:
            self.disk_error = message
            log.error("stopping the batch: %s", message)
        self.cancel.set()

    def abandon(self, parked: Parked) -> DownloadResult:
        """End a parked work that will not be resumed (the run was interrupted)."""
        assert parked.line.work is not None
        result = DownloadResult(
            work_id=parked.line.work.work_id,
            outcome=Outcome.SKIP,
            reason=Reason.CANCELLED,
            message="run interrupted while the work waited for a host",
            line=parked.line.line,
        )
        self.stats.add(result)
        return result

    def prior(self, work_id: str) -> PriorOutcome | None:
        """What an earlier run in the output directory stored for ``work_id`` (resume), or None."""
        return self.state.prior(work_id) if self.resume else None

    def _resumed(self, work: Work) -> tuple[DownloadResult, str | None] | None:
        prior = self.prior(work.work_id)
        verify = self.config.download.verify_stored
        result = outcomes.resumed(prior, self.out_dir, work, verify=verify)
        return None if result is None or prior is None else (result, prior.path)

    def _process(
        self,
        item: InputLine,
        dry_run: bool,
        parked: Parked | None,
        defer_after_s: float | None,
        links: list[Link],
    ) -> DownloadResult | Parked:
        work, line = item.work, item.line
        assert work is not None
        if parked is None and (found := self._resumed(work)) is not None:
            resumed, relpath = found
            outcomes.record_resumed(self.telemetry, resumed, work, relpath, links)
            return resumed
        tracer = self.telemetry.tracer
        started = parked.started if parked else time.perf_counter()
        with tracer.start_as_current_span(
            names.SPAN_WORK,
            attributes={names.WORK_ID: work.work_id, names.ARTIFACT_ID: work.artifact_id},
            links=links,
        ) as span:
            if parked is not None:
                resolution = self.fallback.resume(parked.progress, dry_run=dry_run)
            else:
                resolution = self.fallback.resolve(
                    work,
                    dry_run=dry_run,
                    defer_after_s=defer_after_s,
                    list_only=self.list_only,
                )
            if resolution.parked is not None:
                span.set_attribute(names.REASON, str(Reason.RATE_BUDGET))
                return Parked(
                    item,
                    resolution.parked,
                    resolution.not_before,
                    started,
                    span.get_span_context(),
                )
            body, cand = resolution.body, resolution.candidate
            stored = body.stored if body else None
            ttfp = (time.perf_counter() - started) * 1000 if stored else None
            result = DownloadResult(
                work_id=work.work_id,
                outcome=resolution.outcome,
                reason=resolution.reason,
                message=resolution.message,
                path=stored.path if stored else None,
                sha256=body.sha256 if stored and body else None,
                bytes=body.size if stored and body else None,
                content_type=_MIME.get(body.verdict.kind.value) if stored and body else None,
                resolver=cand.source if cand else None,
                url=(
                    body.url
                    if body
                    else cand.url
                    if cand
                    else resolution.candidates[0].url
                    if resolution.candidates
                    else None
                ),
                dedupe_action=stored.dedupe.value if stored else None,
                ttfp_ms=ttfp,
                trace_id=format(span.get_span_context().trace_id, "032x")
                if span.get_span_context().is_valid
                else None,
                version=cand.version if cand else None,
                license=cand.license if cand else None,
                host_type=cand.host_type if cand else None,
                retracted=resolution.retracted,
                **identity_fields(resolution),
                tdm_policy=resolution.tdm_policy,
                line=line,
                input=redact_url(work.raw) if work.raw else None,
            )
            attrs = outcomes.outcome_attrs(result, stored.relpath if stored else None)
            span.set_attributes(attrs)
            if result.outcome is Outcome.ERROR:
                span.set_status(Status(StatusCode.ERROR, str(result.reason)))
        outcomes.count(self.telemetry, result)
        candidates = [c.url for c in resolution.candidates] if dry_run or self.list_only else None
        self._write_manifest(
            result, stored.relpath if stored else None, dry_run or self.list_only, work, candidates
        )
        return result

    def _write_manifest(
        self,
        result: DownloadResult,
        relpath: str | None,
        dry_run: bool,
        work: Work,
        candidates: list[str] | None = None,
    ) -> None:
        row = result.to_dict()
        row.update(
            run_id=self.run_id,
            artifact_id=work.artifact_id,
            ok=result.ok,
            path=relpath,
            html_paths=[],
            config_hash=self.config_hash,
            dry_run=dry_run,
            message=_scrub(result.message, self.http.secrets),
        )
        if candidates is not None:
            row["candidates"] = [redact_url(u) for u in dict.fromkeys(candidates)]
        self.manifest.write(row)

    def _record_attempt(self, row: AttemptRow) -> None:
        self.attempts.write(row)

    # -- many works -----------------------------------------------------------------------------
    def run(
        self,
        works: Iterable[str | Work] | Iterable[InputLine],
        *,
        dry_run: bool = False,
        max_works: int | None = None,
        list_only: bool = False,
    ) -> Iterator[DownloadResult]:
        """Fetch many works concurrently; yield each result as it finishes.

        ``works`` is streamed (never loaded whole): strings, :class:`Work` objects or
        :class:`~oafetch.works.InputLine` items from :func:`~oafetch.works.read_input`.
        """
        from oafetch.scheduler import Scheduler

        lines = as_lines(works)
        if max_works is not None:
            lines = take(lines, max_works)
        scheduler = Scheduler(
            self, workers=self.config.workers, defer_after_s=self.config.politeness.defer_after_s
        )
        self.list_only = list_only
        try:
            yield from scheduler.run(lines, dry_run=dry_run)
        finally:
            self.list_only = False


def _scrub(text: str, secrets_: tuple[str, ...]) -> str:
    from oafetch.urls import scrub

    return scrub(text, secrets_)
