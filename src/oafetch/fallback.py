"""The fallback orchestrator: ask sources tier by tier until one copy is verified and stored.

Tiers run in order (default: direct OA → repositories → landing pages → archive). Inside a
parallel tier every source runs at once on the shared source pool; the first *verified* download
wins and the others stop at their next checkpoint (before any further request). Budgets bound a
work (total time, number of downloads, per-source time); gates skip a source whose API host has
an open breaker or whose next rate slot is further away than the rate budget. A PMCID tries PMC
first, an arXiv id tries arXiv first. A candidate URL (canonical form) is fetched at most once
per work; a billed source charges its spending cap right before its URL is fetched (a dry run
fetches nothing, so charges nothing). Every source tried is an ``oafetch.attempt`` span (→ a
``fallback_attempts`` row).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import replace

from opentelemetry import context as otel_context

from oafetch import fallback_policy, waiting
from oafetch.config import Config
from oafetch.download import BodyOutcome, RecordAttempt, download
from oafetch.errors import BreakerOpenError, FetchError
from oafetch.fallback_state import (
    DIRECT,
    MAX_REMEMBERED_URLS,
    RESUME_LEAD_S,
    Resolution,
    Tier,
    WorkProgress,
    _at_hop,
    _WorkState,
    claims_here,
    tiers_from_config,
    verdict,
)
from oafetch.http.client import HttpClient
from oafetch.http.ratelimit import RateBudgetExceeded
from oafetch.http.tdmrep import TdmReserved
from oafetch.identity_gate import identify
from oafetch.learning import Learner
from oafetch.oldest_first import OldestFirstPool
from oafetch.resolvers.base import Candidate, Resolver, WorkIds
from oafetch.resolvers.landing_page import followable_links
from oafetch.storage import Storage
from oafetch.telemetry import names
from oafetch.tokens import FallbackOutcome, Reason, Role, Status
from oafetch.urls import canonical_url, host_of, redact_url
from oafetch.works import Work


def _known(ids: WorkIds) -> tuple[object, ...]:
    """What a source is told of a work: asked again only when this changed."""
    return (ids.doi, ids.arxiv, ids.pmid, ids.pmcid, ids.openalex, ids.url, len(ids.urls))


class Fallback:
    """Runs the tiers for one work at a time (thread-safe: many works at once).

    Args:
        resolvers: enabled resolvers by name.
        http / storage / config: the run's client, output files and configuration.
        pool: runs the sources of parallel tiers (shared by all works; the oldest work's first).
        record: receives an ``attempts.csv`` row per download attempt.
    """

    def __init__(
        self,
        resolvers: Mapping[str, Resolver],
        *,
        http: HttpClient,
        storage: Storage,
        config: Config,
        pool: OldestFirstPool,
        record: RecordAttempt | None = None,
        tiers: Sequence[Tier] | None = None,
        learner: Learner | None = None,
    ) -> None:
        self.resolvers = dict(resolvers)
        self.http = http
        self.storage = storage
        self.config = config
        self.policy = config.fallback
        self.pool = pool
        self.record = record
        self.tiers = tuple(tiers or tiers_from_config(config.fallback))
        # Run-wide memory of fetched URLs (canonical form): a URL is fetched at most once per
        # run; another work that reaches it gets the stored file linked, or the same verdict.
        self._fetched: OrderedDict[str, BodyOutcome] = OrderedDict()
        self._fetched_lock = threading.Lock()
        self.max_deferrals = config.politeness.max_deferrals
        self._arrivals = itertools.count()  # each work's order for the source pool
        # Decides the order of sources per work (configured tiers, or learned from telemetry).
        self.learner = learner or Learner(config.fallback.resolver_order)

    # -- the chain ------------------------------------------------------------------------------
    def resolve(
        self,
        work: Work,
        *,
        dry_run: bool = False,
        defer_after_s: float | None = None,
        list_only: bool = False,
    ) -> Resolution:
        """Try the tiers for ``work``; return how it ended (never raises for a source's failure).

        With ``defer_after_s`` (batch mode), a file whose host cannot take it within that many
        seconds is parked: the resolution carries the work's progress and ``not_before``, and
        :meth:`resume` continues it later without repeating what was done.
        """
        state = _WorkState(
            work,
            WorkIds.of(work),
            time.monotonic() + self.policy.total_budget_s,
            self.policy.max_attempts,
        )
        state.defer_after_s = defer_after_s
        state.list_only = list_only
        state.order = next(self._arrivals)
        return self._continue(state, dry_run or list_only)

    def resume(self, progress: WorkProgress, *, dry_run: bool = False) -> Resolution:
        """Continue a parked work: its parked files first, then the remaining tiers."""
        state = progress
        parked, state.parked = state.parked, []
        for candidate, _, slot in parked:
            if state.stop.is_set():
                break
            tier = state.parked_tiers.pop(candidate.url, "") or "resumed"
            if self._resume_one(tier, candidate, state, slot):
                break
        if state.stop.is_set() or state.parked:
            return self._conclude(state, True, dry_run)
        return self._continue(state, dry_run)

    def _resume_one(
        self,
        tier: str,
        candidate: Candidate,
        state: _WorkState,
        slot: tuple[str, float] | None,
    ) -> bool:
        """Download a parked candidate as an attempt of its source (so ``fallback_attempts``
        records how it ended); True when it won the work."""

        def run() -> tuple[FallbackOutcome, Reason, str]:
            failures = len(state.failures)
            body = self._try(candidate, state, depth=0, slot=slot)
            if body is not None and state.win(body, candidate):
                return FallbackOutcome.SUCCESS, Reason.OK, Status.HTTP_200
            if body is not None:
                return FallbackOutcome.SKIPPED, Reason.DUPLICATE, Status.HTTP_200
            if state.parked:  # parked again for the same host
                return FallbackOutcome.SKIPPED, Reason.RATE_BUDGET, Status.RETRY
            last = state.failures[-1][0] if len(state.failures) > failures else Reason.NO_CANDIDATE
            return FallbackOutcome.NO_PDF, last, Status.DOWNLOAD_ERROR

        outcome = self._as_attempt(
            tier, candidate.source, host_of(candidate.url), run, state, api_call=False
        )
        return outcome is FallbackOutcome.SUCCESS

    def _continue(self, state: _WorkState, dry_run: bool) -> Resolution:
        tiers = self.learner.plan(state, self.tiers)
        any_source = bool(state.candidates or state.failures)
        policy = self.config.download
        # A preference, or refusing retracted works, hears every racing source before a file
        # is fetched: the best version wins, and no copy is stored before a source says
        # "retracted".
        if (policy.prefer or policy.skip_retracted) and not dry_run and state.ordered is None:
            gathered = fallback_policy.gather(state, tiers, policy.prefer, self._run_tier)
            any_source = gathered or any_source
        if state.ordered:
            try_one = lambda t, c, s: self._resume_one(t, c, s, None)  # noqa: E731
            fallback_policy.try_ordered(state, policy.accepted_licenses, try_one)
            if state.stop.is_set() or state.parked:
                return self._conclude(state, any_source, dry_run)
        while state.next_tier < len(tiers):
            tier = tiers[state.next_tier]
            state.next_tier += 1
            state.tier_name = tier.name
            if state.remaining() <= 0:
                state.fail(Reason.BUDGET, f"total budget of {self.policy.total_budget_s:g}s used")
                break
            any_source = self._run_tier(tier, state, dry_run) or any_source
            if state.stop.is_set() or state.parked:
                break
            tiers = self.learner.replan(state, tiers) or tiers
        return self._conclude(state, any_source, dry_run)

    def _run_tier(self, tier: Tier, state: _WorkState, dry_run: bool) -> bool:
        """Ask the tier's sources that apply; True if any did."""
        tried: set[str] = set()
        while not (state.stop.is_set() or state.parked):
            # A source that did not apply may apply once another source of the tier has
            # learnt an id (OpenAlex tells the DOI of a PMID): run those in a second pass.
            known = _known(state.ids)
            sources = [
                self.resolvers[n]
                for n in tier.sources
                if n in self.resolvers
                and n not in tried
                and state.asked.get(n) != known  # a learned lead: again if ids grew
                and self.resolvers[n].applies_to(state.work, state.ids)
            ]
            if not sources:
                break
            tried.update(r.name for r in sources)
            state.asked.update((r.name, known) for r in sources)
            if tier.parallel and len(sources) > 1:
                self._run_parallel(tier, sources, state, dry_run)
            else:
                for resolver in sources:
                    self._run_source(tier, resolver, state, dry_run)
                    if state.stop.is_set():
                        break
        return bool(tried)

    def _run_parallel(
        self, tier: Tier, sources: list[Resolver], state: _WorkState, dry_run: bool
    ) -> None:
        ctx = otel_context.get_current()
        slot = waiting.current_slot()

        def task(resolver: Resolver) -> None:
            token = otel_context.attach(ctx)
            try:
                with waiting.holding(slot):
                    self._run_source(tier, resolver, state, dry_run)
            finally:
                otel_context.detach(token)

        futures: list[Future[None]] = [self.pool.submit(state.order, task, r) for r in sources]
        timeout = min(self.policy.per_source_timeout_s, max(0.0, state.remaining()))
        with waiting.idle():  # the sources work; this thread only waits for them
            _, pending = wait(futures, timeout=timeout)
            if pending:  # over budget: stop them at their next checkpoint and let them finish
                state.fail(Reason.TIMEOUT, f"tier {tier.name}: sources over {timeout:.0f}s")
                state.stop.set()
                wait(pending)

    def _gate(self, resolver: Resolver, state: _WorkState) -> tuple[Reason, str] | None:
        if state.stop.is_set():
            return Reason.CANCELLED, "another source already succeeded"
        host = resolver.api_host
        if host and self.http.breakers.state(host) == "open":
            return Reason.BREAKER_OPEN, f"breaker open for {host}"
        if host:
            wait_s = self.http.limiter.next_free_in(host)
            if wait_s > min(self.policy.max_rate_wait_s, max(0.0, state.remaining())):
                return Reason.RATE_BUDGET, f"next slot at {host} in {wait_s:.1f}s"
        return None

    def _run_source(self, tier: Tier, resolver: Resolver, state: _WorkState, dry_run: bool) -> None:
        self._as_attempt(
            tier.name,
            resolver.name,
            resolver.api_host,
            lambda: self._attempt(resolver, state, dry_run),
            state,
        )

    def _as_attempt(
        self,
        tier: str,
        source: str,
        host: str,
        run: Callable[[], tuple[FallbackOutcome, Reason, str]],
        state: _WorkState | None = None,
        *,
        api_call: bool = True,
    ) -> FallbackOutcome:
        """Run one attempt of ``source`` inside its ``oafetch.attempt`` span (one
        ``fallback_attempts`` row) and count it; return its outcome. The learner is told how
        it went (requests ≈ the source's API call + the files it claimed)."""
        telemetry = self.http.telemetry
        attrs: dict[str, str | int] = {names.TIER: tier, names.SOURCE: source, names.HOST: host}
        decision = state.decision if state is not None else None
        if decision is not None:
            attrs[names.POLICY] = decision.policy
            if source in decision.ranks:
                attrs[names.RANK] = decision.ranks[source]
        claims, started = claims_here(), time.monotonic()
        with telemetry.tracer.start_as_current_span(names.SPAN_ATTEMPT, attributes=attrs) as span:
            outcome, reason, status = run()
            asked = api_call and status != "skipped"  # "skipped": a gate stopped it first
            requests = claims_here() - claims + (1 if asked else 0)
            span.set_attribute(names.OUTCOME, outcome)
            span.set_attribute(names.REASON, reason)
            span.set_attribute(names.STATUS, status)
            span.set_attribute(names.REQUESTS, requests)
            if state is not None and state.oa_noted:  # learnt under the OA keys too
                span.set_attribute(names.OA_STATUS, state.learn_keys[-1].removeprefix("oa:"))
        if decision is not None and state is not None:
            self.learner.observe(
                state.learn_keys,
                source,
                str(outcome),
                str(reason),
                seconds=time.monotonic() - started,
                requests=requests,
            )
        if telemetry.enabled:
            telemetry.instruments.fallback_attempts.add(1, {"source": source, "outcome": outcome})
        return outcome

    def _attempt(
        self, resolver: Resolver, state: _WorkState, dry_run: bool
    ) -> tuple[FallbackOutcome, Reason, str]:
        gate = self._gate(resolver, state)
        if gate is not None:
            if gate[0] is not Reason.CANCELLED:
                state.fail(*gate)
            return FallbackOutcome.SKIPPED, gate[0], "skipped"
        try:
            found = resolver.candidates(state.work, state.ids, self.http)
        except FetchError as exc:
            state.fail(exc.reason, f"{resolver.name}: {exc}")
            if exc.reason is Reason.TIMEOUT:
                return FallbackOutcome.TIMEOUT, exc.reason, exc.status
            kind = FallbackOutcome.RETRYABLE if exc.retryable else FallbackOutcome.NONRETRYABLE
            if exc.reason is Reason.NOT_FOUND:
                return FallbackOutcome.NO_PDF, Reason.NOT_FOUND, exc.status
            return kind, exc.reason, exc.status
        except Exception as exc:  # a resolver bug must not kill the batch
            state.fail(Reason.BAD_RESPONSE, f"{resolver.name}: {type(exc).__name__}: {exc}")
            return FallbackOutcome.ERROR, Reason.BAD_RESPONSE, Status.DOWNLOAD_ERROR
        origin = resolver.api_host or None
        found = [c if c.origin or c.source == DIRECT else replace(c, origin=origin) for c in found]
        with state.lock:
            state.candidates.extend(found)
        state.ids.note_urls([c.url for c in found])
        if not found:
            return FallbackOutcome.NO_PDF, Reason.NO_CANDIDATE, Status.HTTP_200
        if self.config.download.skip_retracted and any(c.retracted for c in found):
            state.fail(Reason.RETRACTED, f"{resolver.name}: the work is marked retracted")
            state.stop.set()  # no source's copy is fetched once one says so
            return FallbackOutcome.SKIPPED, Reason.RETRACTED, Status.HTTP_200
        if state.gathering:  # its candidates are tried later, in version order
            return FallbackOutcome.SKIPPED, Reason.OK, Status.HTTP_200
        if dry_run:
            if not state.list_only:  # a dry run stops at the first source with a candidate
                state.stop.set()
            return FallbackOutcome.SUCCESS, Reason.OK, Status.HTTP_200
        last: Reason = Reason.NO_CANDIDATE
        parked_before = len(state.parked)
        for candidate in found:
            if state.stop.is_set() or state.remaining() <= 0:
                break
            if fallback_policy.refused(candidate, state, self.config.download.accepted_licenses):
                last = Reason.LICENSE
                continue
            body = self._try(candidate, state, depth=0)
            if body is not None:
                return (
                    (FallbackOutcome.SUCCESS, Reason.OK, Status.HTTP_200)
                    if state.win(body, candidate)
                    else (FallbackOutcome.SKIPPED, Reason.DUPLICATE, Status.HTTP_200)
                )
            last = state.failures[-1][0] if state.failures else last
        if state.stop.is_set() and state.winner is not None:
            return FallbackOutcome.SKIPPED, Reason.CANCELLED, Status.HTTP_200
        if len(state.parked) > parked_before:  # its file waits for a host: resumed later
            return FallbackOutcome.SKIPPED, Reason.RATE_BUDGET, Status.RETRY
        retryable = last in (
            Reason.THROTTLED,
            Reason.TIMEOUT,
            Reason.CONN_ERROR,
            Reason.RATE_BUDGET,
        )
        return (
            (FallbackOutcome.RETRYABLE if retryable else FallbackOutcome.NO_PDF),
            last,
            Status.DOWNLOAD_ERROR,
        )

    def _try(
        self,
        candidate: Candidate,
        state: _WorkState,
        depth: int,
        slot: tuple[str, float] | None = None,
    ) -> BodyOutcome | None:
        """Download one candidate; follow an HTML page's PDF links (two levels at most).

        In batch mode a file whose host is busy beyond ``defer_after_s`` is parked *with its
        rate slot kept*: the work keeps its place in the host's queue and resumes on time.
        """
        if not state.claim(candidate.url):
            return None
        key = canonical_url(candidate.url)
        with self._fetched_lock:
            earlier = self._fetched.get(key)
            if earlier is not None:
                self._fetched.move_to_end(key)
        if earlier is not None and earlier.stored is not None:
            reused = self._reuse(earlier, candidate, state)
            if reused is not None:
                return reused
            earlier = None  # the file vanished or could not be linked: fetch again
        if earlier is not None:
            body = earlier  # the same verdict as before, without asking the host again
        else:
            fetched = self._fetch(candidate, state, slot)
            if fetched is None:
                return None
            body = fetched
            if body.html is None:  # pages are not memorised (size); the cache serves them
                with self._fetched_lock:
                    self._fetched[key] = body
                    if len(self._fetched) > MAX_REMEMBERED_URLS:
                        self._fetched.popitem(last=False)
        if body.stored is not None:
            return self._identify(body, candidate, state)
        return self._follow(body, candidate, state, depth)

    def _identify(
        self, body: BodyOutcome, candidate: Candidate, state: _WorkState
    ) -> BodyOutcome | None:
        """Check that a stored PDF is the work; ``None`` when it was quarantined instead."""
        return identify(
            body, candidate, state, config=self.config, storage=self.storage, http=self.http
        )

    def _reuse(
        self, earlier: BodyOutcome, candidate: Candidate, state: _WorkState
    ) -> BodyOutcome | None:
        """A URL this run already fetched: link its stored file to this work (no request)."""
        if earlier.stored is None or not earlier.stored.path.exists():
            return None
        try:
            stored = self.storage.adopt(
                earlier.stored, work_id=state.work.work_id, kind=earlier.verdict.kind
            )
        except FetchError as exc:
            state.fail(exc.reason, f"{candidate.source}: {exc}")
            return None
        return replace(earlier, stored=stored)

    def _fetch(
        self, candidate: Candidate, state: _WorkState, slot: tuple[str, float] | None
    ) -> BodyOutcome | None:
        """One download (with parking in batch mode); ``None`` when it failed or was parked."""
        source = self.resolvers.get(candidate.source)
        if source is not None:
            try:
                source.before_fetch(candidate)  # a billed source charges its cap, or refuses
            except FetchError as exc:
                state.fail(exc.reason, str(exc))
                return None
        budget = min(self.policy.max_rate_wait_s, max(0.0, state.remaining()))
        batch = state.defer_after_s is not None
        # parked for a rate slot at most max_deferrals times; waits for a host's breaker have
        # their own bound (fallback_state.MAX_BREAKER_WAITS)
        parking = batch and state.deferrals < self.max_deferrals
        if parking and state.defer_after_s is not None:
            budget = min(budget, state.defer_after_s)
        try:
            body = download(
                self.http,
                candidate.url,
                work_id=state.work.work_id,
                storage=self.storage,
                policy=self.config.download,
                source=candidate.source,
                role=candidate.role,
                record=self.record,
                max_rate_wait_s=budget,
                keep_slot=parking,
                reservation=slot,
                origin_host=candidate.origin,
                expected_md5=candidate.md5,
            )
        except FetchError as exc:
            breaker = batch and isinstance(exc, BreakerOpenError)
            wait_s = state.parked_wait(exc) if parking or breaker else None
            if wait_s is not None:
                state.unclaim(candidate.url)
                if not isinstance(exc, BreakerOpenError):  # breaker waits: counted there
                    state.deferrals += 1
                if isinstance(exc, RateBudgetExceeded) and exc.reserved is not None:
                    # resume just ahead of the slot this work now holds, at the request that
                    # needs it (a redirect hop is not asked for again)
                    state.park(
                        _at_hop(candidate, exc.url),
                        exc.reserved - RESUME_LEAD_S,
                        (exc.host, exc.reserved),
                    )
                else:
                    state.park(candidate, time.monotonic() + wait_s, None)
                return None
            if isinstance(exc, TdmReserved) and exc.policy:
                state.tdm_policy = state.tdm_policy or redact_url(exc.policy)
            state.fail(exc.reason, f"{candidate.source}: {exc}")
            return None
        return body

    def _follow(
        self, body: BodyOutcome, candidate: Candidate, state: _WorkState, depth: int
    ) -> BodyOutcome | None:
        """An HTML page instead of a file: try the PDF links it announces, else record why not."""
        links: list[str] = []
        reserved = fallback_policy.page_reserved  # with tdm: the page's meta reserves TDM
        if self.config.download.tdm and body.html and reserved(body, candidate.source, state):
            return None
        if body.html is not None and body.verdict.reason is not Reason.BOT_CHALLENGE and depth < 2:
            links = followable_links(body.html, body.url, state.ids)
            for link in links:
                if state.stop.is_set():
                    break
                linked = replace(
                    candidate, url=link, role=Role.ARTIFACT, origin=host_of(body.url) or None
                )
                found = self._try(linked, state, depth + 1)
                if found is not None:
                    return found
        if links:
            return None  # the page's links were tried: their failures tell the story
        where = f"{candidate.source}: {host_of(body.url)}"
        if body.verdict.reason is Reason.NOT_PDF and (
            candidate.role is Role.LANDING or (depth > 0 and "pdf" not in body.content_type)
        ):
            # A landing page without PDF links, or a link guessed from a page that honestly
            # answers HTML: no full text here, not "HTML served as a PDF".
            state.fail(Reason.NO_CANDIDATE, f"{where}: no full text behind the landing page")
            return None
        state.fail(body.verdict.reason, f"{where}: {body.verdict.message}")
        return None

    # -- the verdict ----------------------------------------------------------------------------
    def _conclude(self, state: _WorkState, any_source: bool, dry_run: bool) -> Resolution:
        resolution = verdict(state, any_source, dry_run)
        resolution.quarantined = list(state.quarantined)
        resolution.tdm_policy = state.tdm_policy
        return resolution
