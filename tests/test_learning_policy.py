"""The learned resolver order's pure parts: keys, estimates, the ordering policy, recovery."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from oafetch.fallback_state import DEFAULT_TIERS, Tier
from oafetch.learning import policy
from oafetch.learning.estimates import Accumulator, feed, load_history, verdict
from oafetch.learning.keys import key_of_work_id, work_key
from oafetch.learning.policy import KeyEstimate, Params, SourceEstimate, decide
from oafetch.telemetry import store
from oafetch.works import parse_work

TIERS = (
    Tier("direct", ("unpaywall", "openalex", "crossref")),
    Tier("repositories", ("europe_pmc", "hal", "core")),
    Tier("landing", ("landing_page",), parallel=False),
    Tier("archive", ("wayback",), parallel=False),
    Tier("paid", ("openalex_content",), parallel=False),
)
ALL = {s for t in TIERS for s in t.sources}
KEY = "doi-prefix:10.5555"


def est(works: int, **sources: tuple[float, float, float]) -> KeyEstimate:
    """sources: name=(attempts, successes, cost)."""
    return KeyEstimate(works, {n: SourceEstimate(a, s, c) for n, (a, s, c) in sources.items()})


# -- keys ------------------------------------------------------------------------------------


def test_keys_name_what_is_known_before_asking() -> None:
    assert work_key(parse_work("10.1371/journal.pone.0000001")) == "doi-prefix:10.1371"
    assert work_key(parse_work("https://doi.org/10.5555/X")) == "doi-prefix:10.5555"
    assert work_key(parse_work("PMC1234567")) == "kind:pmcid"
    assert work_key(parse_work("arXiv:2101.00001")) == "kind:arxiv"
    url = parse_work("https://Journals.Example.org/a.pdf?token=secret")
    assert work_key(url) == "host:journals.example.org"
    assert key_of_work_id("doi:10.1371/journal.pone.0000001") == "doi-prefix:10.1371"
    assert key_of_work_id("url:https://journals.example.org/a.pdf") == "host:journals.example.org"
    assert key_of_work_id("pmcid:PMC1") == "kind:pmcid"
    assert key_of_work_id("nonsense") is None
    assert key_of_work_id(None) is None


# -- the decision -------------------------------------------------------------------------------


def test_too_little_evidence_keeps_the_configured_tiers() -> None:
    for estimate in (None, est(2, europe_pmc=(2, 2, 2.0))):
        d = decide(KEY, TIERS, estimate, work_no=3)
        assert d.policy == policy.PRIOR
        assert d.tiers == TIERS
        assert d.order[0] == "unpaywall" and d.ranks["unpaywall"] == 1
        assert d.ranks["openalex_content"] == len(ALL)


def test_proven_source_leads_cheapest_per_success_first() -> None:
    e = est(
        12,
        unpaywall=(10, 0, 1.2),
        openalex=(10, 0, 1.1),
        europe_pmc=(9, 9, 2.5),
        hal=(8, 8, 6.0),  # proven too, but dearer per success
        core=(8, 0, 1.0),
    )
    d = decide(KEY, TIERS, e, work_no=5)
    assert d.policy == policy.LEARNED
    assert d.lead == ("europe_pmc", "hal")
    assert d.tiers[0] == Tier(policy.LEAD_TIER, ("europe_pmc", "hal"), parallel=False)
    assert d.order[:2] == ("europe_pmc", "hal")
    assert d.ranks["europe_pmc"] == 1 and d.ranks["hal"] == 2
    assert "europe_pmc first for doi-prefix:10.5555" in d.reason
    # within a configured tier, the cheaper expected cost per success goes first
    direct = next(t for t in d.tiers if t.name == "direct")
    assert direct.sources[-1] == "unpaywall" or direct.sources.index("crossref") == 0


def test_no_source_is_ever_dropped() -> None:
    estimates = [
        est(50, unpaywall=(40, 0, 1.0), openalex=(40, 0, 1.0), europe_pmc=(40, 40, 2.0)),
        est(50, core=(0.5, 0.5, 1.0), hal=(1.0, 1.0, 1.0)),  # too little evidence to lead
        est(5),
    ]
    estimates.append(KeyEstimate(50, {"core": SourceEstimate(40, 0, 1.0, silent=40)}))
    for e in estimates:
        for n in range(1, 25):
            d = decide(KEY, TIERS, e, work_no=n)
            assert set(d.order) == ALL, d
            assert set(d.ranks) == ALL


def test_a_source_without_evidence_keeps_its_configured_tier() -> None:
    e = est(20, europe_pmc=(10, 10, 2.0), hal=(1.0, 1.0, 1.0))
    d = decide(KEY, TIERS, e, work_no=3)
    assert d.lead == ("europe_pmc",)  # hal's single success is too little to lead
    tier_of = {s: t.name for t in d.tiers[1:] for s in t.sources}
    assert tier_of["hal"] == "repositories"
    assert tier_of["unpaywall"] == "direct"
    # the lead also stays in its tier (asked there again only if the work's ids grew)
    assert tier_of["europe_pmc"] == "repositories"


def test_billed_and_archive_sources_never_lead() -> None:
    e = est(20, openalex_content=(10, 10, 0.5), wayback=(10, 10, 0.5))
    d = decide(KEY, TIERS, e, work_no=3, billed=frozenset({"openalex_content"}))
    assert d.policy == policy.PRIOR and d.tiers == TIERS


def test_exploration_floor_asks_an_unproven_source_first() -> None:
    e = est(30, unpaywall=(10, 1, 1.0), openalex=(10, 0, 1.0), europe_pmc=(10, 10, 2.0))
    params = Params(explore_every=10)
    learned = [decide(KEY, TIERS, e, params, work_no=n) for n in range(1, 31)]
    explored = [n for n, d in enumerate(learned, 1) if d.policy == policy.EXPLORE]
    assert explored == [10, 20, 30]
    d = learned[9]
    assert d.lead[-1] == "europe_pmc" and d.lead[0] != "europe_pmc"
    assert d.ranks["europe_pmc"] == 2
    assert "exploration floor" in d.reason
    assert all(d.order[0] == "europe_pmc" for n, d in enumerate(learned, 1) if n % 10)


# -- estimates -----------------------------------------------------------------------------------


def test_verdicts() -> None:
    assert verdict("success", "ok") is True
    assert verdict("skipped", "duplicate") is True
    assert verdict("no_pdf", "no-candidate") is False
    assert verdict("timeout", "timeout") is False
    assert verdict("skipped", "cancelled") is None  # another source won first: not evidence
    assert verdict("skipped", "breaker-open") is None


def test_accumulator_decays_per_work_of_the_key() -> None:
    acc = Accumulator(decay=0.5)
    acc.begin_work(KEY)
    acc.observe(KEY, "hal", "no_pdf", "no-candidate", seconds=1.0, requests=1)
    acc.observe(KEY, "hal", "skipped", "cancelled", seconds=1.0, requests=1)  # ignored
    acc.begin_work(KEY)
    acc.begin_work("doi-prefix:10.1")  # another key does not decay this one
    snap = acc.snapshot()[KEY]
    assert snap.works == 2
    assert snap.sources["hal"].attempts == 0.5
    assert snap.sources["hal"].cost == 2.0  # 1 request + 1 second
    (row,) = acc.rows()
    assert (row.asked, row.ok, row.requests) == (1, 0, 1)


def _store(path: Path, *, with_new_columns: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(store.schema_sql())
    if not with_new_columns:
        conn.execute("ALTER TABLE fallback_attempts DROP COLUMN requests")
    return conn


def test_history_is_read_from_a_store_and_old_stores_are_migrated(tmp_path: Path) -> None:
    conn = _store(tmp_path / "telemetry.sqlite", with_new_columns=False)
    rows = [
        ("r1", 1.0, f"doi:10.5555/x{i}", "europe_pmc", "success" if i < 4 else "no_pdf", 800.0)
        for i in range(5)
    ] + [("r1", 2.0, "doi:10.5555/x0", "unpaywall", "no_pdf", 100.0)]
    conn.executemany(
        "INSERT INTO fallback_attempts (run_id, ts, work_id, source, outcome, elapsed_ms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.commit()
    acc = Accumulator(decay=1.0)
    assert load_history(acc, tmp_path) == 5  # the out dir stands for its store
    snap = acc.snapshot()[KEY]
    assert snap.works == 5
    assert (snap.sources["europe_pmc"].attempts, snap.sources["europe_pmc"].successes) == (5, 4)
    # an older store gains the new columns (defaults) when oafetch opens it
    store.add_missing_columns(conn)
    cols = {r[1]: r[4] for r in conn.execute('PRAGMA table_info("fallback_attempts")')}
    assert {"policy", "rank", "requests"} <= set(cols)
    assert conn.execute("SELECT DISTINCT policy FROM fallback_attempts").fetchall() == [
        ("configured",)
    ]
    conn.close()
    assert load_history(Accumulator(), tmp_path / "missing.sqlite") == 0
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 10)
    assert load_history(Accumulator(), tmp_path / "junk.sqlite") == 0


# -- recovery ------------------------------------------------------------------------------------


def _simulate(works: int, fails: range, params: Params) -> list[policy.Decision]:
    """A key whose best source (cheap 'hal') fails for the works in ``fails``; 'core' (dear)
    always works. Each work asks sources in the decided order until one succeeds."""
    tiers = (Tier("repositories", ("hal", "core", "zenodo")),)
    acc = Accumulator()
    decisions: list[policy.Decision] = []
    snapshot: dict[str, KeyEstimate] = {}
    for n in range(works):
        work_no = acc.begin_work(KEY)
        d = decide(KEY, tiers, snapshot.get(KEY), params, work_no=work_no)
        decisions.append(d)
        for source in dict.fromkeys(d.order):
            ok = {"hal": n not in fails, "core": True, "zenodo": False}[source]
            cost = {"hal": 1, "core": 3, "zenodo": 1}[source]
            acc.observe(
                KEY, source, "success" if ok else "no_pdf", "ok", seconds=0.2, requests=cost
            )
            if ok:
                break
        snapshot = acc.snapshot()  # refresh every work here; the run refreshes every few
    return decisions


def test_a_recovered_source_is_back_in_its_old_rank_within_bounded_works() -> None:
    params = Params()
    fails = range(20, 35)
    decisions = _simulate(120, fails, params)
    # the rank a work's own (not exploring) order gives each source
    ranks = [d.ranks if d.policy != policy.EXPLORE else None for d in decisions]
    assert ranks[18] is not None and ranks[18]["hal"] == 1  # rank 1 before it failed
    assert ranks[33] is not None and ranks[33]["core"] == 1  # core leads while hal fails
    assert ranks[33]["hal"] > 1

    def settled(n: int) -> bool:  # hal first in the next 5 works that do not explore
        own = [r for r in ranks[n:] if r is not None][:5]
        return len(own) == 5 and all(r["hal"] == 1 for r in own)

    back = next(n for n in range(35, 120) if settled(n))
    assert back - 35 <= 3 * params.explore_every, f"hal back at rank 1 only after {back - 35}"
    assert all(r["hal"] == 1 for r in ranks[back:] if r is not None)  # and it stays there


def test_default_tiers_are_a_valid_prior() -> None:
    d = decide(KEY, DEFAULT_TIERS, None)
    assert d.order[0] == "unpaywall" and d.policy == policy.PRIOR
    assert feed(Accumulator(), []) == 0


def test_a_silent_useless_source_is_demoted_not_dropped() -> None:
    e = KeyEstimate(
        20,
        {
            "core": SourceEstimate(8, 0, 1.0, silent=8),  # never a candidate: demoted
            "hal": SourceEstimate(8, 0, 1.0, silent=1),  # names URLs later tiers use: kept
            "zenodo": SourceEstimate(3, 0, 1.0, silent=3),  # too little evidence: kept
        },
    )
    d = decide(KEY, TIERS, e, work_no=3, billed=frozenset({"openalex_content"}))
    assert d.policy == policy.LEARNED and "1 demoted: core" in d.reason
    names = [t.name for t in d.tiers]
    assert names[-2:] == [policy.DEMOTED_TIER, "paid"]
    assert d.tiers[-2].sources == ("core",)
    assert set(d.order) == ALL
    repositories = next(t for t in d.tiers if t.name == "repositories")
    assert "hal" in repositories.sources and "core" not in repositories.sources


def test_the_learner_remembers_a_decision_until_its_next_snapshot() -> None:
    from oafetch.learning import Learner

    work = parse_work("10.5555/abc")
    configured_only = Learner("configured")
    d = configured_only.decide(work, TIERS)
    assert d.policy == policy.CONFIGURED and d.tiers == TIERS
    configured_only.observe(KEY, "hal", "success", "ok", seconds=0.1, requests=2)
    assert configured_only.acc.rows() == []  # configured: nothing learned

    learner = Learner(refresh_every=100, params=Params(explore_every=4))
    for _ in range(5):
        learner.acc.begin_work(KEY)
        learner.acc.observe(KEY, "hal", "success", "ok", seconds=0.1, requests=2)
    learner.refresh()
    first = learner.decide(work, TIERS)  # work 6
    assert first.policy == policy.LEARNED and first.lead == ("hal",)
    assert learner.decide(work, TIERS) is first  # work 7: the same decision, not recomputed
    explore = learner.decide(work, TIERS)  # work 8: the exploration floor is never memoised
    assert explore.policy == policy.EXPLORE and explore.lead[-1] == "hal"
