"""The fallback's data: tiers (configured or default, with per-work hints), a work's progress
through them (what a parked work carries until it resumes), and how a work's chain ended.

Plain data and small pure helpers; :mod:`oafetch.fallback` drives them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from oafetch.config import FallbackConfig
from oafetch.download import BodyOutcome
from oafetch.errors import BreakerOpenError, FetchError
from oafetch.identity import IdentityVerdict
from oafetch.resolvers.base import Candidate, WorkIds
from oafetch.tokens import Outcome, Reason
from oafetch.urls import canonical_url, host_of
from oafetch.works import IdKind, Work


@dataclass(frozen=True)
class Tier:
    name: str
    sources: tuple[str, ...]
    parallel: bool = True


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("direct", ("unpaywall", "openalex", "crossref", "semantic_scholar")),
    Tier(
        "repositories",
        (
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
        ),
    ),
    Tier("landing", ("landing_page",), parallel=False),
    Tier("archive", ("wayback",), parallel=False),
    # Billed (off unless enabled): asked only when every free source failed.
    Tier("paid", ("openalex_content",), parallel=False),
)

# Which failure best explains a work that found candidates but stored nothing (most telling first).
_REASON_RANK = (
    Reason.RETRACTED,
    Reason.TDM_RESERVED,
    Reason.IDENTITY_MISMATCH,
    Reason.IDENTITY_UNKNOWN,
    Reason.LICENSE,
    Reason.BOT_CHALLENGE,
    Reason.NOT_PDF,
    Reason.TRUNCATED,
    Reason.CHECKSUM_MISMATCH,
    Reason.SIZE_MISMATCH,
    Reason.POLICY_SIZE,
    Reason.POLICY_TYPE,
    Reason.ROBOTS,
    Reason.THROTTLED,
    Reason.RATE_BUDGET,
    Reason.BREAKER_OPEN,
    Reason.TIMEOUT,
    Reason.TLS_ERROR,
    Reason.CONN_ERROR,
    Reason.HTTP_ERROR,
    Reason.REDIRECT,
    Reason.DISK_ERROR,
    Reason.NOT_FOUND,
    Reason.BAD_RESPONSE,
    Reason.BAD_REQUEST,
    Reason.BUDGET,
    Reason.SPEND_CAP,
    Reason.CANCELLED,
    Reason.DOWNLOAD_ERROR,
)


# How many fetched URLs a run remembers (least recently used dropped), to fetch each once.
MAX_REMEMBERED_URLS = 50_000

# The source name of a URL the user gave as input (no origin: the user chose it).
DIRECT = "direct"

# A parked work is resumed this long before its kept rate slot, so it is ready on time.
RESUME_LEAD_S = 0.05

# In a batch, a file whose host's breaker is open is parked until the breaker lets a probe
# through, at most this many times per work (not taken from its ``total_budget_s``): a host
# that is down for a while loses no work for the run; a dead host's works end after that.
MAX_BREAKER_WAITS = 3
# How long such a work waits when the breaker's one probe is in flight (it closes or reopens).
# These waits are not counted: the probe may itself wait long for its rate slot behind the
# host's queue, and its answer is still to come (it closes the breaker, or reopens it and the
# next wait counts).
BREAKER_PROBE_WAIT_S = 2.0
# Two breaker-open refusals whose probe times differ by less than this are the same opening.
SAME_OPENING_S = 1.0

# Reasons that mean "not asked" rather than "failed".
_SOFT = frozenset(
    {
        Reason.RATE_BUDGET,
        Reason.BREAKER_OPEN,
        Reason.THROTTLED,
        Reason.BUDGET,
        Reason.SPEND_CAP,
        Reason.CANCELLED,
        Reason.RETRACTED,
        Reason.LICENSE,
        Reason.TDM_RESERVED,
    }
)
# ... and those that stay soft though copies were found: a policy, not the copies, refused them
_SOFT_WITH_COPIES = frozenset(
    {Reason.SPEND_CAP, Reason.RETRACTED, Reason.LICENSE, Reason.TDM_RESERVED}
)


def tiers_from_config(config: FallbackConfig) -> tuple[Tier, ...]:
    """The configured ``[[fallback.tiers]]``, or the default chain."""
    if not config.tiers:
        return DEFAULT_TIERS
    return tuple(Tier(t.name, tuple(t.sources), t.parallel) for t in config.tiers)


def _at_hop(candidate: Candidate, hop_url: str | None) -> Candidate:
    """``candidate`` moved to the redirect hop that was parked (the same candidate if none).

    The hop keeps the guard's view of where it came from: its origin is the host that
    redirected to it, as if the redirect were followed again.
    """
    if not hop_url or hop_url == candidate.url:
        return candidate
    return replace(candidate, url=hop_url, origin=host_of(candidate.url) or candidate.origin)


def tiers_for(work: Work, tiers: Sequence[Tier]) -> list[Tier]:
    """Per-work hints: a PMCID asks PMC first, an arXiv id asks arXiv first."""
    hint = {IdKind.PMCID: "pmc", IdKind.ARXIV: "arxiv"}.get(work.kind)
    if hint is None:
        return list(tiers)
    rest = [Tier(t.name, tuple(s for s in t.sources if s != hint), t.parallel) for t in tiers]
    return [Tier("hint", (hint,), False), *[t for t in rest if t.sources]]


@dataclass
class Resolution:
    """How a work's fallback chain ended."""

    outcome: Outcome
    reason: Reason
    message: str
    body: BodyOutcome | None = None
    candidate: Candidate | None = None
    candidates: list[Candidate] = field(default_factory=list)
    downloads: int = 0
    parked: WorkProgress | None = None  # set when the work waits for a host: resume it later
    # files this work's chain quarantined (not the work): their identity verdict and path
    quarantined: list[tuple[IdentityVerdict, str]] = field(default_factory=list)
    # ``tdm = true``: the policy URL of a copy whose rightsholder reserved TDM rights
    tdm_policy: str | None = None

    @property
    def identity(self) -> IdentityVerdict | None:
        """The stored file's identity verdict; for a work that stored nothing, the verdict of
        the last file quarantined for it (``None``: no PDF was checked)."""
        if self.body is not None and self.body.identity is not None:
            return self.body.identity
        return self.quarantined[-1][0] if self.quarantined else None

    @property
    def retracted(self) -> bool | None:
        """Whether a source marked the work retracted (OpenAlex, PMC's OA service, a Crossref
        ``updated-by`` notice): ``True`` if any candidate says so, ``False`` if some say it is
        not, ``None`` if no source said."""
        said = [c.retracted for c in self.candidates if c.retracted is not None]
        return any(said) if said else None

    @property
    def not_before(self) -> float:
        """Monotonic time at which a parked work should be resumed."""
        return min((t for _, t, _ in self.parked.parked), default=0.0) if self.parked else 0.0


# Files claimed by the current thread (an attempt's requests = its API call + these).
CLAIMS = threading.local()


def claims_here() -> int:
    """How many files this thread has claimed so far."""
    return int(getattr(CLAIMS, "n", 0))


@dataclass
class _WorkState:
    work: Work
    ids: WorkIds
    deadline: float
    max_attempts: int
    order: int = 0  # its arrival among the run's works: the source pool serves the oldest first
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    seen: set[str] = field(default_factory=set)
    downloads: int = 0
    winner: tuple[BodyOutcome, Candidate] | None = None
    failures: list[tuple[Reason, str]] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    # (candidate, not_before, the rate slot kept for it as (host, start) or None)
    parked: list[tuple[Candidate, float, tuple[str, float] | None]] = field(default_factory=list)
    # the tier each parked candidate's source ran in (its resumed attempt is recorded there)
    parked_tiers: dict[str, str] = field(default_factory=dict)
    tier_name: str = ""  # the tier running now
    next_tier: int = 0
    deferrals: int = 0
    breaker_waits: int = 0  # times it was parked until a host's open breaker lets a probe by
    # (not counting waits for the verdict of a probe in flight)
    breaker_probes: dict[str, float] = field(default_factory=dict)  # host -> counted probe time
    breaker_parked_until: float = float("-inf")  # its breaker waits moved the deadline to here
    defer_after_s: float | None = None  # None: wait in place (single fetch), else park
    list_only: bool = False  # ask every source, download nothing
    # ``prefer``: the racing tiers' candidates in version order with their tier, tried one by
    # one before the later tiers (None: not gathered); ``gathering`` while they are asked.
    ordered: list[tuple[Candidate, str]] | None = None
    gathering: bool = False
    quarantined: list[tuple[IdentityVerdict, str]] = field(default_factory=list)
    # the order decided for this work (oafetch.learning.policy.Decision) and its tiers
    decision: Any = None
    plan: list[Tier] | None = None
    asked: dict[str, tuple[object, ...]] = field(default_factory=dict)  # source -> ids it saw
    # the keys the work's attempts are learned under (its key, then its OA keys once known)
    learn_keys: list[str] = field(default_factory=list)
    oa_noted: bool = False  # counted under its OA keys
    oa_work_no: int = 0  # its number among the works of key|oa:status
    replanned: bool = False  # the remaining tiers were reordered by the OA status
    tdm_policy: str | None = None  # the policy URL of a TDM-reserved copy, if it named one

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def parked_wait(self, exc: FetchError) -> float | None:
        """How long to park a file whose fetch failed with ``exc`` before asking again (batch
        mode); None when it is not worth waiting for: the failure stands.

        A wait for a host's breaker is not taken from the work's budget (its deadline moves
        with it): the parked work holds nothing meanwhile, and a breaker's reset timeout
        (60 s by default) would otherwise outlast the budget of any work that meets it late.
        """
        if isinstance(exc, BreakerOpenError):
            now = time.monotonic()
            if exc.remaining_s > 0:
                # one wait per opening of the host's breaker, however many of the work's
                # candidates (PDF, landing page, each source's link) are on that host
                probe_at = now + exc.remaining_s
                counted = self.breaker_probes.get(exc.host)
                if counted is None or abs(probe_at - counted) > SAME_OPENING_S:
                    if self.breaker_waits >= MAX_BREAKER_WAITS:
                        return None
                    self.breaker_waits += 1
                    self.breaker_probes[exc.host] = probe_at
            wait_s = max(exc.remaining_s, BREAKER_PROBE_WAIT_S)  # probe in flight: shortly
            # the deadline moves by the time parked, once for waits that overlap
            until = now + wait_s
            self.deadline += max(0.0, until - max(now, self.breaker_parked_until))
            self.breaker_parked_until = max(self.breaker_parked_until, until)
            return wait_s
        if exc.reason in (Reason.RATE_BUDGET, Reason.THROTTLED) and exc.retry_after:
            wait_s = exc.retry_after
        else:
            return None
        return wait_s if wait_s <= max(0.0, self.remaining()) else None

    def claim(self, url: str) -> bool:
        """Reserve a candidate URL for download (once per work, within the attempt budget)."""
        key = canonical_url(url)
        with self.lock:
            if key in self.seen or self.stop.is_set():
                return False
            if self.downloads >= self.max_attempts:
                self.failures.append((Reason.BUDGET, f"attempt budget of {self.max_attempts} used"))
                return False
            self.seen.add(key)
            self.downloads += 1
            CLAIMS.n = getattr(CLAIMS, "n", 0) + 1
            return True

    def unclaim(self, url: str) -> None:
        with self.lock:
            self.seen.discard(canonical_url(url))
            self.downloads -= 1

    def park(self, candidate: Candidate, not_before: float, slot: tuple[str, float] | None) -> None:
        with self.lock:
            self.parked.append((candidate, not_before, slot))
            self.parked_tiers[candidate.url] = self.tier_name

    def quarantine(self, verdict: IdentityVerdict, relpath: str) -> None:
        with self.lock:
            self.quarantined.append((verdict, relpath))

    def fail(self, reason: Reason, message: str) -> None:
        with self.lock:
            self.failures.append((reason, message))

    def win(self, body: BodyOutcome, candidate: Candidate) -> bool:
        with self.lock:
            if self.winner is not None:
                return False
            self.winner = (body, candidate)
            self.stop.set()
            return True


WorkProgress = _WorkState  # what a parked work carries until it is resumed


def verdict(state: _WorkState, any_source: bool, dry_run: bool) -> Resolution:
    """What a work's attempts come to: parked, won, a dry run's find, or its worst failure."""
    if state.winner is None and state.parked and not state.stop.is_set():
        host = host_of(state.parked[0][0].url)
        return Resolution(
            Outcome.SKIP,
            Reason.RATE_BUDGET,
            f"waiting for {host}",
            candidates=state.candidates,
            downloads=state.downloads,
            parked=state,
        )
    if state.winner is not None:
        body, candidate = state.winner
        return Resolution(
            Outcome.SUCCESS, Reason.OK, "ok", body, candidate, state.candidates, state.downloads
        )
    if dry_run and state.candidates:
        first = state.candidates[0]
        return Resolution(
            Outcome.SKIP,
            Reason.OK,
            "dry run: candidate found",
            None,
            first,
            state.candidates,
            0,
        )
    if not any_source:
        return Resolution(
            Outcome.SKIP,
            Reason.NO_CANDIDATE,
            "no enabled source applies to this identifier",
            candidates=[],
        )
    reasons = [r for r, _ in state.failures]
    for reason in _REASON_RANK:
        if reason in reasons:
            message = next(m for r, m in state.failures if r is reason)
            # Sources a gate skipped may still hold a copy: a skip, to retry later. A copy
            # the spending cap refused is one too, however far the chain got to it.
            soft = reason in _SOFT and (not state.candidates or reason in _SOFT_WITH_COPIES)
            return Resolution(
                Outcome.SKIP if soft else Outcome.ERROR,
                reason,
                message,
                None,
                None,
                state.candidates,
                state.downloads,
            )
    hard = [(r, m) for r, m in state.failures if r is not Reason.NO_CANDIDATE]
    if hard:  # a failure the ranking does not list (bad-input, no-credential …)
        return Resolution(
            Outcome.ERROR,
            hard[0][0],
            hard[0][1],
            None,
            None,
            state.candidates,
            state.downloads,
        )
    return Resolution(
        Outcome.SKIP,
        Reason.NO_CANDIDATE,
        "no source reported an open-access copy",
        None,
        None,
        state.candidates,
        state.downloads,
    )
