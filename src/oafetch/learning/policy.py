"""The pure decision: in which order to ask the sources for one work, and why.

Input: the configured tiers (the prior), what has been learned for the work's key (per source:
decayed attempts, successes, mean cost of an attempt) and the policy's parameters. Output: the
tiers to run, each source's rank and a one-line reason. No I/O, no clock, no randomness.

The rule, in order:

1. **Too little evidence** for the key (fewer than ``min_works`` works seen): the configured
   tiers, unchanged (policy ``prior``).
2. **No source proven** for the key: the configured tiers (policy ``prior``).
3. **Learned**: sources *proven* for the key (at least ``min_evidence`` attempts, success chance
   ≥ ``lead_min_p``) are asked first, one at a time, cheapest expected cost per success first;
   then the configured tiers, each ordered by the same score (a lead source stays in its tier:
   it is asked again there only if the work's ids grew meanwhile). No source is ever dropped:
   one without enough evidence keeps its configured place. A billed source never leads, nor
   does an archive lookup (it needs the URLs that earlier sources report).
4. **Demoted**: a source with at least ``demote_evidence`` attempts for the key, a success chance
   ≤ ``demote_max_p`` and no candidate named in ≥ 90 % of them is asked after every other free
   tier (a ``demoted`` tier before ``paid``): still asked when all else fails, never dropped.
5. **Exploration floor**: on every ``explore_every``-th work of a key, the unproven source with
   the lowest optimistic score is asked before the proven ones (policy ``explore``), so a source
   that failed and recovered is noticed within a bounded number of works.
6. **Split by OA status**: when no source is proven for the key, or the best one's chance is
   below ``split_below``, but for some OA status a source is proven for ``key|oa:status``
   (``splits``), a source that reports the OA status (``informants``: Unpaywall, OpenAlex) is
   asked first, alone; the fallback then orders what remains by the finer key
   (:meth:`oafetch.learning.Learner.replan`).

Expected cost per success = mean cost of an attempt ÷ optimistic success chance, where the
chance is the posterior mean under a prior set by the configured tier (0.5, 0.25, 0.17 …), plus
an upper-confidence bonus that grows as evidence fades, with a floor so no score is infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from oafetch.fallback_state import Tier

CONFIGURED = "configured"  # resolver_order = "configured": no learning
PRIOR = "prior"  # learned order asked, too little evidence: the configured tiers
EXPLORE = "explore"  # the exploration floor: the configured tiers, to re-test every source
LEARNED = "learned"  # proven sources first
POLICIES = (CONFIGURED, PRIOR, EXPLORE, LEARNED)

LEAD_TIER = "learned"
DEMOTED_TIER = "demoted"

#: Sources that never lead: an archive lookup needs the URLs earlier sources reported, so its
#: success when asked last says nothing of its success when asked first.
NEVER_LEAD = frozenset({"wayback"})


@dataclass(frozen=True)
class SourceEstimate:
    """What is known of one source for one key (decayed counts: recent works weigh more)."""

    attempts: float = 0.0  # attempts that told something (a success or a failure)
    successes: float = 0.0
    cost: float | None = None  # mean cost of one attempt (requests + seconds + billed weight)
    silent: float = 0.0  # failures that reported no candidate at all (nothing for later tiers)


@dataclass(frozen=True)
class KeyEstimate:
    works: int = 0  # works of this key seen (not decayed)
    sources: Mapping[str, SourceEstimate] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    min_works: int = 3
    min_evidence: float = 2.0
    lead_min_p: float = 0.5
    prior_strength: float = 1.0
    bonus: float = 0.2
    floor: float = 0.05
    explore_every: int = 10
    default_cost: float = 3.0
    demote_evidence: float = 5.0  # attempts before a silent, never successful source is demoted
    demote_max_p: float = 0.1
    # below this chance for the key's best source, a source whose OA status proves a lead for
    # ``key|oa:status`` (an informant) is asked first
    split_below: float = 0.8


@dataclass(frozen=True)
class Scored:
    source: str
    p: float  # posterior mean chance of a verified file
    p_opt: float  # optimistic chance (bonus, floor)
    cost: float  # expected cost of an attempt
    score: float  # expected cost per success (lower first)
    evidence: float  # decayed attempts
    silent: float = 0.0  # share of the attempts that reported no candidate


@dataclass(frozen=True)
class Decision:
    key: str
    policy: str
    reason: str
    tiers: tuple[Tier, ...]
    ranks: Mapping[str, int]  # source -> 1-based position in the order asked
    lead: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(s for t in self.tiers for s in t.sources)


def prior_p(tier_index: int) -> float:
    """The prior chance of a source in the ``tier_index``-th configured tier."""
    return 0.5 / (1 + tier_index)


def score_source(
    source: str, tier_index: int, est: KeyEstimate, params: Params, billed: bool = False
) -> Scored:
    """One source's expected cost per success for a key."""
    s = est.sources.get(source, SourceEstimate())
    m = params.prior_strength
    p = (s.successes + m * prior_p(tier_index)) / (s.attempts + m)
    bonus = params.bonus * math.sqrt(math.log1p(est.works) / (1.0 + s.attempts))
    p_opt = min(1.0, max(params.floor, p + bonus))
    cost = s.cost if s.cost is not None else params.default_cost + (10.0 if billed else 0.0)
    silent = s.silent / s.attempts if s.attempts > 1e-9 else 0.0
    return Scored(source, p, p_opt, cost, cost / p_opt, s.attempts, silent)


def ranks(tiers: Sequence[Tier]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for tier in tiers:
        for source in tier.sources:
            ranks.setdefault(source, len(ranks) + 1)
    return ranks


def _with_demoted(
    tiers: Sequence[Tier],
    demoted: Sequence[str],
    billed: frozenset[str],
    scored: Mapping[str, Scored],
    order: Callable[[Scored], tuple[float, int]],
) -> tuple[Tier, ...]:
    """The configured tiers ordered by score, demoted sources moved to a tier of their own
    just before the first tier of billed sources (else at the end)."""
    out: list[Tier] = []
    for t in tiers:
        left = tuple(
            sorted((s for s in t.sources if s not in demoted), key=lambda s: order(scored[s]))
        )
        if left:
            out.append(Tier(t.name, left, t.parallel))
    if demoted:
        paid = next((i for i, t in enumerate(out) if set(t.sources) & billed), len(out))
        out.insert(paid, Tier(DEMOTED_TIER, tuple(demoted)))
    return tuple(out)


def _scores(
    tiers: Sequence[Tier], est: KeyEstimate, params: Params, billed: frozenset[str]
) -> tuple[dict[str, Scored], Callable[[Scored], tuple[float, int]]]:
    """Every configured source scored for a key, and the sort order (score, then configured
    position)."""
    scored: dict[str, Scored] = {}
    position: dict[str, int] = {}
    for index, tier in enumerate(tiers):
        for source in tier.sources:
            if source not in scored:
                scored[source] = score_source(source, index, est, params, source in billed)
                position[source] = len(position)

    def order(s: Scored) -> tuple[float, int]:
        return (s.score, position[s.source])

    return scored, order


def _informant(
    tiers: Sequence[Tier],
    splits: Mapping[str, KeyEstimate] | None,
    params: Params,
    billed: frozenset[str],
    informants: frozenset[str],
) -> tuple[str, str] | None:
    """The source to ask first because the OA status it reports decides the order, and an
    account of the OA keys' leads (``oa:green → hal``); None when no OA key proves a source."""
    # the first configured (Unpaywall before OpenAlex by default): the OA status a key is
    # learnt under must come from the same source from work to work
    informant = next((s for t in tiers for s in t.sources if s in informants), None)
    if not splits or informant is None:
        return None
    leads: list[str] = []
    for status, est in sorted(splits.items()):
        if est.works < params.min_works:
            continue
        sub, sub_order = _scores(tiers, est, params, billed)
        best = min(
            (
                s
                for s in sub.values()
                if s.source not in billed | NEVER_LEAD | informants
                and s.evidence >= params.min_evidence
                and s.p >= params.lead_min_p
            ),
            key=sub_order,
            default=None,
        )
        if best is not None:
            leads.append(f"oa:{status} → {best.source}")
    return (informant, ", ".join(leads)) if leads else None


def configured(key: str, tiers: Sequence[Tier], policy: str, reason: str) -> Decision:
    """The configured tiers as they are."""
    return Decision(key, policy, reason, tuple(tiers), ranks(tiers))


def decide(
    key: str,
    tiers: Sequence[Tier],
    est: KeyEstimate | None,
    params: Params = Params(),
    *,
    work_no: int = 0,
    billed: frozenset[str] = frozenset(),
    splits: Mapping[str, KeyEstimate] | None = None,
    informants: frozenset[str] = frozenset(),
) -> Decision:
    """The order for the ``work_no``-th work (1-based) of ``key``; see the module doc."""
    works = est.works if est is not None else 0
    if est is None or works < params.min_works:
        return configured(
            key, tiers, PRIOR, f"{works} works seen for {key} (< {params.min_works}): configured"
        )
    scored, order = _scores(tiers, est, params, billed)
    no_lead = billed | NEVER_LEAD
    can_lead = [s for s in scored.values() if s.source not in no_lead]
    proven = sorted(
        (s for s in can_lead if s.evidence >= params.min_evidence and s.p >= params.lead_min_p),
        key=order,
    )
    # Demoted: enough evidence that it never delivers for this key and never even names a
    # candidate (so later sources learn nothing from it): asked after the free tiers, not dropped.
    demoted = [
        s.source
        for s in sorted(scored.values(), key=order)
        if s.evidence >= params.demote_evidence
        and s.p <= params.demote_max_p
        and s.silent >= 0.9
        and s.source not in billed
    ]
    undecided = not proven or proven[0].p < params.split_below
    if undecided and (split := _informant(tiers, splits, params, billed, informants)):
        # The informant alone first, in a tier of its own: once it has reported the OA status,
        # the fallback reorders what follows by the finer key.
        informant, leads = split
        after = tuple(s.source for s in proven if s.source != informant)
        lead = (informant, *after)
        rest = _with_demoted(tiers, [d for d in demoted if d not in lead], billed, scored, order)
        first = [Tier(LEAD_TIER, (informant,), parallel=False)]
        if after:
            first.append(Tier(LEAD_TIER, after, parallel=False))
        plan = (*first, *rest)
        about = f"best {proven[0].source} p={proven[0].p:.2f}" if proven else "no source proven"
        reason = (
            f"{informant} first for {key} ({about}): the OA status it reports orders the rest "
            f"({leads})"
        )
        return Decision(key, LEARNED, reason, plan, ranks(plan), lead)
    if not proven and not demoted:
        best = min(scored.values(), key=order, default=None)
        about = f" (best {best.source} p={best.p:.2f} n={best.evidence:.1f})" if best else ""
        return configured(key, tiers, PRIOR, f"no source proven for {key}{about}: configured")
    if not proven:
        plan = _with_demoted(tiers, demoted, billed, scored, order)
        reason = f"no source proven for {key}; {len(demoted)} demoted: {', '.join(demoted)}"
        return Decision(key, LEARNED, reason, plan, ranks(plan))
    lead = tuple(s.source for s in proven)
    top = proven[0]
    policy = LEARNED
    reason = (
        f"{top.source} first for {key}: p={top.p:.2f} n={top.evidence:.1f} "
        f"cost/success={top.score:.2f}"
    )
    others = sorted((s for s in can_lead if s.source not in lead), key=order)
    if others and params.explore_every > 0 and work_no > 0 and work_no % params.explore_every == 0:
        # The exploration floor: the most promising unproven source is asked first, so one
        # that failed and recovered (or was never tried alone) is noticed.
        pick = others[0]
        lead = (pick.source, *lead)
        policy = EXPLORE
        reason = (
            f"exploration floor (work {work_no} of {key}): {pick.source} first "
            f"(p={pick.p:.2f} n={pick.evidence:.1f}), then {top.source}"
        )
    # The configured tiers follow, each ordered by score; a lead source keeps its place there
    # too (the fallback asks it again only if the work's ids grew since it was asked first).
    rest = _with_demoted(tiers, [d for d in demoted if d not in lead], billed, scored, order)
    plan = (Tier(LEAD_TIER, lead, parallel=False), *rest)
    if demoted:
        reason += f"; {len(demoted)} demoted"
    return Decision(key, policy, reason, plan, ranks(plan), lead)
