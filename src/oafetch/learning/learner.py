"""The run's learner: the fallback asks it for each work's order and tells it each attempt.

It holds the accumulator (history loaded at start + this run's attempts) and a snapshot of its
estimates, rebuilt every ``refresh_every`` works, so the decision is a dictionary look-up and
a little arithmetic: nothing on the download path waits for a store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace

from oafetch.fallback_state import Tier, _WorkState, tiers_for
from oafetch.learning import policy
from oafetch.learning.estimates import Accumulator, load_history
from oafetch.learning.keys import OA, SPLIT, oa_keys, work_key
from oafetch.learning.policy import Decision, KeyEstimate, Params
from oafetch.telemetry import names
from oafetch.works import Work

if TYPE_CHECKING:
    from oafetch.config import Config
    from oafetch.resolvers.base import Resolver

log = logging.getLogger(__name__)


class Learner:
    """Decides the order of sources per work (``mode`` ``configured`` or ``learned``).

    Args:
        mode: ``configured`` (always the configured tiers) or ``learned``.
        billed: sources that bill their calls (never lead; weighted in costs).
        informants: sources that report a work's OA status (asked first when the OA status
            decides the order of the rest).
        refresh_every: works between two snapshots of the estimates.
        params: the policy's parameters.
    """

    def __init__(
        self,
        mode: str = policy.LEARNED,
        *,
        billed: Iterable[str] = (),
        refresh_every: int = 5,
        params: Params | None = None,
        accumulator: Accumulator | None = None,
        informants: Iterable[str] = (),
    ) -> None:
        self.mode = mode
        self.billed = frozenset(billed)
        self.informants = frozenset(informants)
        self.refresh_every = max(1, refresh_every)
        self.params = params or Params()
        self.acc = accumulator or Accumulator()
        self._lock = threading.Lock()
        self._since = 0
        self._snapshot: dict[str, KeyEstimate] = {}
        self._splits: dict[str, dict[str, KeyEstimate]] = {}  # key -> OA status -> estimate
        # decisions per (key, tiers) until the next snapshot: most works of a key decide alike
        self._decided: dict[tuple[str, tuple[Tier, ...]], Decision] = {}
        self._generation = 0
        self.history_works = 0

    def load(self, paths: Iterable[Path]) -> int:
        """Feed the attempts of these stores (out dirs or files); the works fed. Call at start."""
        for path in paths:
            try:
                self.history_works += load_history(self.acc, path, self.billed)
            except Exception as exc:  # a foreign file must not stop the run
                log.warning("could not learn from %s: %s", path, exc)
        self.refresh()
        return self.history_works

    def refresh(self) -> None:
        snap = self.acc.snapshot()
        splits: dict[str, dict[str, KeyEstimate]] = {}
        for key, est in snap.items():
            base, sep, status = key.partition(SPLIT + OA)
            if sep:
                splits.setdefault(base, {})[status] = est
        with self._lock:
            self._snapshot = snap
            self._splits = splits
            self._decided = {}
            self._generation += 1
            self._since = 0

    def plan(self, state: _WorkState, configured: Sequence[Tier]) -> list[Tier]:
        """The tiers for ``state``'s work, decided once (learned, or as configured); the
        decision and its reason go on the current (``oafetch.work``) span, a resumed work's too.
        """
        if state.plan is None:
            tiers = tiers_for(state.work, configured)
            if state.list_only:  # every source is asked anyway: nothing to decide
                state.plan = tiers
                return tiers
            decision = self.decide(state.work, tiers)
            state.decision, state.plan = decision, list(decision.tiers)
            state.learn_keys = [decision.key]
        _record(state.decision)
        return state.plan

    def note_oa(self, state: _WorkState) -> None:
        """After the tier in which a source reported the work's OA status: count the work
        under the two OA keys (its later attempts are learnt under them too) and put the
        status on the span."""
        status = state.ids.oa_status
        if status is None or state.decision is None or self.mode == policy.CONFIGURED:
            return
        with state.lock:
            if state.oa_noted:
                return
            state.oa_noted = True
        keys = oa_keys(state.decision.key, status)
        state.oa_work_no = self.acc.begin_work(keys[0])
        self.acc.begin_work(keys[1])
        state.learn_keys = [state.decision.key, *keys]
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(names.OA_STATUS, status)

    def replan(self, state: _WorkState, tiers: Sequence[Tier]) -> list[Tier] | None:
        """The remaining tiers reordered by the OA status a source reported, once: by
        ``key|oa:status`` when it proves a source, else (when the work's own key proved none)
        by ``oa:status``; None to go on as planned."""
        self.note_oa(state)
        base = state.decision
        if not state.oa_noted or state.replanned or base is None or len(state.learn_keys) < 3:
            return None
        state.replanned = True
        done, rest = list(tiers[: state.next_tier]), list(tiers[state.next_tier :])
        if not rest:
            return None
        fine, coarse = state.learn_keys[1:3]
        # The back-off: the OA status alone only when the work's own key proves no source
        # (an informant asked first proves nothing of the rest).
        own_lead = set(base.lead) - self.informants
        with self._lock:
            candidates = [(fine, self._snapshot.get(fine))]
            if not own_lead:
                candidates.append((coarse, self._snapshot.get(coarse)))
        for key, est in candidates:
            if est is None or est.works < self.params.min_works:
                continue
            decision = policy.decide(
                key, rest, est, self.params, work_no=state.oa_work_no, billed=self.billed
            )
            if decision.policy not in (policy.LEARNED, policy.EXPLORE) or not decision.lead:
                continue
            plan = [*done, *decision.tiers]
            state.decision = policy.Decision(
                key,
                decision.policy,
                decision.reason,
                tuple(plan),
                policy.ranks(plan),
                decision.lead,
            )
            state.plan = plan
            _record(state.decision)
            return plan
        return None

    def decide(self, work: Work, tiers: Sequence[Tier]) -> Decision:
        """The order for ``work`` (counts it as a new work of its key)."""
        key = work_key(work)
        if self.mode == policy.CONFIGURED:
            return policy.configured(key, tiers, policy.CONFIGURED, "resolver_order = configured")
        work_no = self.acc.begin_work(key)
        memo = (key, tuple(tiers))
        with self._lock:
            self._since += 1
            stale = self._since >= self.refresh_every
            est = self._snapshot.get(key)
            known = self._decided.get(memo)
            generation = self._generation
        if stale:
            self.refresh()
        explore = self.params.explore_every > 0 and work_no % self.params.explore_every == 0
        if known is not None and not explore:
            return known
        decision = policy.decide(
            key,
            tiers,
            est,
            self.params,
            work_no=work_no,
            billed=self.billed,
            splits=self._splits.get(key),
            informants=self.informants,
        )
        if decision.policy != policy.EXPLORE and not stale:
            with self._lock:
                if generation == self._generation:  # else: decided from an older snapshot
                    self._decided[memo] = decision
        return decision

    def observe(
        self,
        keys: Iterable[str],
        source: str,
        outcome: str,
        reason: str,
        *,
        seconds: float,
        requests: int | None,
    ) -> None:
        """One attempt of ``source`` for a work of these keys ended."""
        if self.mode == policy.CONFIGURED:
            return
        for key in keys:
            self.acc.observe(
                key,
                source,
                outcome,
                reason,
                seconds=seconds,
                requests=requests,
                billed=source in self.billed,
            )


def _record(decision: Decision | None) -> None:
    """The decision and its reason on the current (``oafetch.work``) span."""
    span = trace.get_current_span()
    if decision is not None and span.is_recording():
        span.set_attributes(
            {
                names.POLICY: decision.policy,
                names.POLICY_KEY: decision.key,
                names.POLICY_REASON: decision.reason,
                names.POLICY_ORDER: ",".join(decision.order),
            }
        )


def for_run(config: Config, resolvers: Mapping[str, Resolver], out_dir: Path) -> Learner:
    """The learner of a run: its mode from ``fallback.resolver_order``; in ``learned`` mode
    primed with the out dir's own store and every ``fallback.learn_from`` store."""
    billed = [name for name, r in resolvers.items() if r.spending() is not None]
    informants = [name for name, r in resolvers.items() if r.reports_oa_status]
    learner = Learner(config.fallback.resolver_order, billed=billed, informants=informants)
    if learner.mode == policy.LEARNED:
        learner.load([out_dir, *config.fallback.learn_from])
    return learner
