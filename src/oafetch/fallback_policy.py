"""The policies' part of a work's chain: versions (``prefer``), licences (``licenses``),
retractions (``skip_retracted``) and TDM reservations on landing pages (``tdm``).

With ``prefer`` (or ``skip_retracted``) every source of the leading parallel tiers is asked for
its candidates before any file is fetched; the candidates are then queued best version first
and tried one by one, each as an attempt of its source. ``licenses`` refuses a candidate under
another licence before it is fetched. With ``tdm``, a landing page whose meta reserves TDM
rights is not followed. The fallback calls these with its own steps (ask a tier,
try one candidate), so the order of work stays in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from oafetch.candidate_policy import license_refusal, order_by_version
from oafetch.download import BodyOutcome
from oafetch.fallback_state import DIRECT, Tier, _WorkState
from oafetch.http import tdmrep
from oafetch.resolvers.base import Candidate
from oafetch.tokens import Reason
from oafetch.urls import redact_url

#: ask one tier's sources (``dry_run``: list candidates only); True if any applied
RunTier = Callable[[Tier, _WorkState, bool], bool]
#: try one candidate as an attempt of its source in the named tier; True if it won the work
TryOne = Callable[[str, Candidate, _WorkState], bool]


def gather(state: _WorkState, tiers: Sequence[Tier], prefer: Sequence[str], run: RunTier) -> bool:
    """Ask every source of the leading parallel tiers for its candidates (downloading none),
    then queue them best version first on ``state.ordered``; True if any source applied."""
    any_source = False
    tier_of: dict[str, str] = {}
    state.gathering = True
    try:
        while state.next_tier < len(tiers) and tiers[state.next_tier].parallel:
            tier = tiers[state.next_tier]
            state.next_tier += 1
            state.tier_name = tier.name
            tier_of.update((source, tier.name) for source in tier.sources)
            any_source = run(tier, state, True) or any_source
            if state.stop.is_set():  # a source marked the work retracted
                break
    finally:
        state.gathering = False
    # ties in the tiers' order of sources (not the order the parallel answers came in)
    place = {source: i for i, source in enumerate(tier_of)}
    found = sorted(state.candidates, key=lambda c: place.get(c.source, len(place)))
    queue = [(c, tier_of.get(c.source, state.tier_name)) for c in found]
    state.ordered = order_by_version(queue, prefer, lambda item: item[0].version)
    return any_source


def try_ordered(state: _WorkState, accepted: frozenset[str] | None, try_one: TryOne) -> None:
    """Try the queued candidates in version order until one wins, the work parks or stops."""
    assert state.ordered is not None
    while state.ordered and not (state.stop.is_set() or state.parked):
        if state.remaining() <= 0:
            break
        candidate, tier = state.ordered.pop(0)
        if refused(candidate, state, accepted):
            continue
        if try_one(tier, candidate, state):
            break


def refused(candidate: Candidate, state: _WorkState, accepted: frozenset[str] | None) -> bool:
    """The ``licenses`` setting (``accepted``; None: any) refuses ``candidate``; the failure is
    recorded on ``state``."""
    if candidate.source == DIRECT:  # a URL the user gave is the user's choice
        return False
    refusal = license_refusal(candidate.license, accepted)
    if refusal is not None:
        state.fail(Reason.LICENSE, f"{redact_url(candidate.url)}: {refusal}")
    return refusal is not None


def page_reserved(page: BodyOutcome, source: str, state: _WorkState) -> bool:
    """With ``tdm``: the landing page's meta reserves TDM rights on the work it presents (the
    failure and its policy URL are recorded on ``state``)."""
    said = tdmrep.from_html(page.html or "")
    if said.reserved:
        state.tdm_policy = state.tdm_policy or (said.policy and redact_url(said.policy))
        where = f"{source}: {redact_url(page.url)}"
        state.fail(Reason.TDM_RESERVED, f"{where}: TDM rights reserved by the page's meta")
    return bool(said.reserved)
