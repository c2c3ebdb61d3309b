"""The OA-status key of the learned order: an informant asked first when the OA status decides
which source holds a copy, the remaining tiers reordered by ``key|oa:status`` (or, backing off,
``oa:status``), and the keys stored attempts count under."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from learned_runs import RATES, run
from oafetch.fallback_state import Tier, _WorkState
from oafetch.learning import Learner, policy
from oafetch.learning.estimates import Accumulator, feed, load_history
from oafetch.learning.keys import keys_of_attempt, oa_keys
from oafetch.learning.policy import KeyEstimate, SourceEstimate, decide
from oafetch.resolvers.base import WorkIds
from oafetch.sandbox import Corpus, Sandbox
from oafetch.telemetry import store
from oafetch.works import parse_work

TIERS = (
    Tier("direct", ("unpaywall", "openalex", "crossref")),
    Tier("repositories", ("europe_pmc", "hal", "core")),
    Tier("landing", ("landing_page",), parallel=False),
)
KEY = "doi-prefix:10.5555"
INFORMANTS = frozenset({"unpaywall", "openalex"})


def est(works: int, **sources: tuple[float, float]) -> KeyEstimate:
    """sources: name=(attempts, successes), each attempt costing 2."""
    return KeyEstimate(works, {n: SourceEstimate(a, s, 2.0) for n, (a, s) in sources.items()})


# A publisher whose works are a third gold (Unpaywall's own PDF), a third green (Europe PMC)
# and a third closed (HAL): no source is proven for the prefix, each is for its OA status.
MIXED = est(30, unpaywall=(30, 10), europe_pmc=(30, 10), hal=(30, 10))
SPLITS = {
    "gold": est(10, unpaywall=(10, 10)),
    "green": est(10, unpaywall=(10, 0), europe_pmc=(10, 10), hal=(10, 0)),
    "closed": est(10, unpaywall=(10, 0), europe_pmc=(10, 0), hal=(10, 10)),
}


def test_oa_status_is_learnt_from_the_first_source_and_normalised() -> None:
    ids = WorkIds()
    ids.learn_about(oa_status="nonsense")
    assert ids.oa_status is None
    ids.learn_about(oa_status=" Green ")
    ids.learn_about(oa_status="gold")  # the first to tell wins
    assert ids.oa_status == "green"
    # ... but Unpaywall's word (the authority) replaces OpenAlex's, whichever answered first
    ids.learn_about(oa_status="closed", authority=True)
    ids.learn_about(oa_status="gold")
    assert ids.oa_status == "closed"


def test_oa_keys_refine_the_work_key_and_back_off_to_the_status() -> None:
    assert oa_keys(KEY, "green") == (f"{KEY}|oa:green", "oa:green")
    assert keys_of_attempt("doi:10.5555/x", "closed") == (KEY, f"{KEY}|oa:closed", "oa:closed")
    assert keys_of_attempt("doi:10.5555/x", None) == (KEY,)
    assert keys_of_attempt("nonsense", "gold") == ()


def test_an_informant_is_asked_first_when_the_oa_status_decides() -> None:
    d = decide(KEY, TIERS, MIXED, splits=SPLITS, informants=INFORMANTS)
    assert d.policy == policy.LEARNED
    assert d.tiers[0] == Tier(policy.LEAD_TIER, ("unpaywall",), parallel=False)
    assert d.lead == ("unpaywall",)
    assert "oa:closed → hal" in d.reason and "oa:green → europe_pmc" in d.reason
    assert set(d.order) == {s for t in TIERS for s in t.sources}  # nothing dropped


def test_no_informant_without_a_proven_split_or_when_the_key_is_decided() -> None:
    # no split proves anything: the prefix's own decision
    thin = {"green": est(2, europe_pmc=(2, 2))}
    assert decide(KEY, TIERS, MIXED, splits=thin, informants=INFORMANTS).policy == policy.PRIOR
    # no informant configured
    assert decide(KEY, TIERS, MIXED, splits=SPLITS).policy == policy.PRIOR
    # the prefix has a source that nearly always works: it leads, no detour
    decided = est(30, hal=(30, 29))
    d = decide(KEY, TIERS, decided, splits=SPLITS, informants=INFORMANTS)
    assert d.lead == ("hal",)
    # a proven but weak lead: the informant first, the weak lead kept right after it
    weak = est(30, hal=(30, 18))
    d = decide(KEY, TIERS, weak, splits=SPLITS, informants=INFORMANTS)
    assert d.lead == ("unpaywall", "hal")
    assert [t.sources for t in d.tiers[:2]] == [("unpaywall",), ("hal",)]


def _learner(history: dict[str, KeyEstimate]) -> Learner:
    learner = Learner(informants=INFORMANTS)
    learner._snapshot = dict(history)
    return learner


def _state(decision: policy.Decision, oa_status: str | None) -> _WorkState:
    work = parse_work("10.5555/x")
    state = _WorkState(work, WorkIds.of(work), deadline=1e12, max_attempts=10)
    state.decision, state.plan = decision, list(decision.tiers)
    state.learn_keys = [decision.key]
    state.next_tier = 1  # the first tier ran
    state.ids.oa_status = oa_status
    return state


def test_replan_orders_what_remains_by_the_fine_key() -> None:
    learner = _learner({f"{KEY}|oa:{s}": e for s, e in SPLITS.items()})
    first = decide(KEY, TIERS, MIXED, splits=SPLITS, informants=INFORMANTS)
    state = _state(first, "closed")
    plan = learner.replan(state, first.tiers)
    assert plan is not None and plan[0] == first.tiers[0]  # what ran stays
    assert plan[1].sources == ("hal",)
    assert state.decision.key == f"{KEY}|oa:closed" and state.decision.ranks["hal"] == 2
    assert state.learn_keys == [KEY, f"{KEY}|oa:closed", "oa:closed"]
    assert learner.replan(state, plan) is None  # once per work


def test_replan_backs_off_to_the_oa_status_only_when_the_key_proves_nothing() -> None:
    coarse = {"oa:green": SPLITS["green"]}
    learner = _learner(coarse)
    unproven = decide(KEY, TIERS, None)  # too little evidence for the prefix
    state = _state(unproven, "green")
    plan = learner.replan(state, unproven.tiers)
    assert plan is not None and state.decision.key == "oa:green"
    assert plan[1].sources == ("europe_pmc",)
    # the prefix proves its own lead: the OA status alone (other publishers) does not override it
    own = decide(KEY, TIERS, est(30, core=(30, 29)))
    state = _state(own, "green")
    assert learner.replan(state, own.tiers) is None
    assert state.decision is own
    # no OA status reported: nothing to do
    state = _state(unproven, None)
    assert learner.replan(state, unproven.tiers) is None


def test_stored_attempts_count_under_their_oa_keys(tmp_path: Path) -> None:
    db = tmp_path / "telemetry.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(store.schema_sql())
    rows = [
        ("r1", 1.0, "doi:10.5555/a", "unpaywall", "no_pdf", "no-candidate", 10.0, "green"),
        ("r1", 2.0, "doi:10.5555/a", "europe_pmc", "success", "ok", 10.0, "green"),
        ("r1", 3.0, "doi:10.5555/b", "crossref", "no_pdf", "no-candidate", 10.0, None),
    ]
    conn.executemany(
        "INSERT INTO fallback_attempts (run_id, ts, work_id, source, outcome, reason, "
        "elapsed_ms, oa_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    conn.close()
    acc = Accumulator()
    assert load_history(acc, tmp_path) == 2
    snap = acc.snapshot()
    assert snap[KEY].works == 2
    assert snap[f"{KEY}|oa:green"].works == 1 and snap["oa:green"].works == 1
    assert snap[f"{KEY}|oa:green"].sources["europe_pmc"].successes == 1.0
    assert "crossref" not in snap[f"{KEY}|oa:green"].sources
    # rows of a store written before the column existed feed the work's key only
    assert feed(Accumulator(), [("r", "doi:10.5555/a", "hal", "success", "ok", 0.1, 2, None)]) == 1


# -- end to end ----------------------------------------------------------------------------------


def test_a_run_that_learnt_the_oa_split_asks_for_the_right_copy_first(tmp_path: Path) -> None:
    corpus = Corpus(seed=7, n_works=45, profile="by_oa_status")
    sources = {w.doi: w.sources for w in corpus.works}
    assert {s for s in sources.values() if "unpaywall" not in s} == {
        ("europe_pmc",),
        ("hal", "openaire"),
    }
    with Sandbox(corpus=corpus, rates=RATES) as sandbox:
        ids = [w.identifier for w in sandbox.works]
        obtainable = sum(w.expected_obtainable for w in sandbox.works)
        configured = run(sandbox, tmp_path / "configured", ids, resolver_order="configured")
        run(sandbox, tmp_path / "first", ids)
        learned = run(sandbox, tmp_path / "second", ids, learn_from=[tmp_path / "first"])
    assert configured[0] == learned[0] == obtainable == 45
    assert learned[1] < 0.5 * configured[1], (learned, configured)
    conn = sqlite3.connect(tmp_path / "second" / "telemetry.sqlite")
    rows = conn.execute(
        "SELECT work_id, source, outcome, rank, oa_status FROM fallback_attempts"
    ).fetchall()
    conn.close()
    said = {w: oa for w, _, _, _, oa in rows if oa}
    assert set(said.values()) >= {"green", "closed"}
    # the works Unpaywall called closed: a source of their HAL copy among the first three asked
    # (a source the prefix still trusts may come between), and it delivered. HAL and OpenAIRE
    # both list that copy, and which of them delivered it in the first run (so taught the
    # order) is a race between the two
    closed = {w for w, oa in said.items() if oa == "closed"}
    early = {
        w
        for w, s, out, rank, _ in rows
        if w in closed and s in {"hal", "openaire"} and rank <= 3 and out == "success"
    }
    assert len(early) >= 0.7 * len(closed), [r for r in rows if r[0] in closed - early]
