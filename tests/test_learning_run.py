"""The learned resolver order end to end, on a sandbox web where the source that holds a copy
depends on the publisher: a run that learns from an earlier one asks fewer requests for the same
yield, every decision is on the spans and in ``fallback_attempts``, and
``oafetch telemetry sources`` shows it."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from learned_runs import RATES, run
from oafetch.sandbox import Corpus, Sandbox
from oafetch.telemetry import analytics_cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("learned")
    corpus = Corpus(seed=7, n_works=24, profile="by_publisher")
    with Sandbox(corpus=corpus, rates=RATES) as sandbox:
        ids = [w.identifier for w in sandbox.works]
        obtainable = sum(w.expected_obtainable for w in sandbox.works)
        history = tmp / "history"
        first = run(sandbox, history, ids)
        learned = run(sandbox, tmp / "learned", ids, learn_from=[history])
        configured = run(
            sandbox, tmp / "configured", ids, learn_from=[history], resolver_order="configured"
        )
    return {
        "tmp": tmp,
        "obtainable": obtainable,
        "first": first,
        "learned": learned,
        "configured": configured,
    }


def test_the_profile_makes_the_best_source_depend_on_the_publisher() -> None:
    corpus = Corpus(seed=7, n_works=12, profile="by_publisher")
    by_prefix = {w.doi.split("/")[0]: w.sources for w in corpus.works}
    assert by_prefix["10.5555"] == ("europe_pmc",)
    assert by_prefix["10.5580"] == ("core",)
    assert all(w.identifier == w.doi for w in corpus.works)
    with pytest.raises(ValueError, match="profile"):
        Corpus(seed=7, n_works=3, profile="nope")


def test_a_learned_run_asks_fewer_requests_for_the_same_yield(runs: dict[str, Any]) -> None:
    stored_l, requests_l = runs["learned"]
    stored_c, requests_c = runs["configured"]
    stored_1, requests_1 = runs["first"]
    assert stored_l == stored_c == stored_1 == runs["obtainable"]
    assert requests_l < 0.7 * requests_c, (requests_l, requests_c)
    assert requests_l < requests_1, (requests_l, requests_1)


def _rows(out: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(out / "telemetry.sqlite") as conn:
        return conn.execute(sql).fetchall()


def test_every_decision_is_recorded_in_fallback_attempts(runs: dict[str, Any]) -> None:
    learned, configured = runs["tmp"] / "learned", runs["tmp"] / "configured"
    policies = Counter(p for (p,) in _rows(learned, "SELECT policy FROM fallback_attempts"))
    assert policies["learned"] > 0 and set(policies) <= {"learned", "prior", "explore"}
    assert _rows(learned, "SELECT count(*) FROM fallback_attempts WHERE rank IS NULL") == [(0,)]
    # the Europe PMC publisher's works: Europe PMC asked first, and it delivered
    firsts = _rows(
        learned,
        "SELECT source, outcome, requests FROM fallback_attempts "
        "WHERE work_id LIKE 'doi:10.5555/%' AND policy = 'learned' AND rank = 1",
    )
    assert firsts and all(r == ("europe_pmc", "success", 2) for r in firsts), firsts
    assert _rows(configured, "SELECT DISTINCT policy FROM fallback_attempts") == [("configured",)]
    ranks = dict(_rows(configured, "SELECT DISTINCT source, rank FROM fallback_attempts"))
    assert ranks["unpaywall"] == 1 and ranks["europe_pmc"] > ranks["semantic_scholar"]


def test_the_decision_is_on_the_work_and_attempt_spans(runs: dict[str, Any]) -> None:
    spans_file = runs["tmp"] / "learned" / "spans.jsonl"
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    works = [s["attributes"] for s in spans if s["name"] == "oafetch.work"]
    assert works and all("oafetch.policy" in a for a in works)
    lead = [a for a in works if a["oafetch.policy"] == "learned"]
    assert lead
    for attrs in lead:
        assert attrs["oafetch.policy.key"].startswith("doi-prefix:10.")
        if attrs["oafetch.policy.key"] == "doi-prefix:10.5575":  # archive only: none leads
            assert "demoted" in attrs["oafetch.policy.reason"]
            continue
        assert " first for doi-prefix:" in attrs["oafetch.policy.reason"]
        assert attrs["oafetch.policy.order"].split(",")[0] in {
            "europe_pmc",
            "hal",
            "pmc",
            "unpaywall",
            "openalex",
            "crossref",
            "core",
        }
    attempts = [s["attributes"] for s in spans if s["name"] == "oafetch.attempt"]
    assert all("oafetch.rank" in a and "oafetch.requests" in a for a in attempts)


def test_telemetry_sources_table(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    db = runs["tmp"] / "history"
    assert analytics_cli.main(["sources", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "doi-prefix:10.5555" in text and "europe_pmc" in text and "lead 1" in text
    assert analytics_cli.main(["sources", "--db", str(db), "--key", "10.5555", "--json"]) == 0
    reports = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    # the prefix's own key, and the same works refined by the OA status Unpaywall reported
    assert set(reports) == {"doi-prefix:10.5555", "doi-prefix:10.5555|oa:green"}
    report = reports["doi-prefix:10.5555"]
    assert report["policy"] == "learned"
    epmc = next(r for r in report["rows"] if r["source"] == "europe_pmc")
    assert epmc["success_rate"] == 1.0 and epmc["rank"] == 1 and epmc["action"] == "lead 1"
    assert epmc["requests_per_success"] == 2.0
    assert epmc["median_s"] is not None
    crossref = next(r for r in report["rows"] if r["source"] == "crossref")
    assert crossref["success_rate"] == 0.0 and crossref["action"] == "tier direct"
    missing = runs["tmp"] / "nowhere"
    assert analytics_cli.main(["sources", "--db", str(missing)]) == 2
    assert "telemetry store not found" in capsys.readouterr().err
