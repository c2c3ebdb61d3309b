"""The fallback orchestrator: tiers, first verified success, budgets, hints, one fetch per URL."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from loopback import Loopback, pdf_bytes
from oafetch import Candidate, Downloader, Outcome, Reason, Resolver, WorkIds
from oafetch.config import Config, ResolverSettings
from oafetch.fallback_state import DEFAULT_TIERS, Tier, tiers_for
from oafetch.http.client import HttpClient
from oafetch.works import Work, parse_work


class Scripted(Resolver):
    """A resolver that waits ``delay`` seconds, then offers ``urls``."""

    name: ClassVar[str] = "scripted"
    calls: list[str]

    def __init__(self, name: str, urls: list[str], delay: float = 0.0) -> None:
        super().__init__(ResolverSettings(), Config())
        self.name = name  # type: ignore[misc]
        self.urls_ = urls
        self.delay = delay
        self.calls = []

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return True

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        self.calls.append(work.work_id)
        time.sleep(self.delay)
        return [Candidate(u, self.name) for u in self.urls_]


def _downloader(
    make_config: Any, resolvers: dict[str, Resolver], tiers: list[dict[str, Any]], **overrides: Any
) -> Downloader:
    return Downloader(make_config(fallback={"tiers": tiers, **overrides}), resolvers=resolvers)


def test_first_verified_success_cancels_slower_sources(server: Loopback, make_config: Any) -> None:
    server.routes["/fast.pdf"] = lambda h: h.reply(200, pdf_bytes(seed=1), "application/pdf")
    server.routes["/slow.pdf"] = lambda h: h.reply(200, pdf_bytes(seed=2), "application/pdf")
    fast = Scripted("fast", [server.url("/fast.pdf")])
    slow = Scripted("slow", [server.url("/slow.pdf")], delay=0.8)
    later = Scripted("later", [server.url("/later.pdf")])
    tiers = [
        {"name": "one", "sources": ["fast", "slow"], "parallel": True},
        {"name": "two", "sources": ["later"]},
    ]
    with _downloader(make_config, {"fast": fast, "slow": slow, "later": later}, tiers) as dl:
        result = dl.fetch("10.1234/abc")
    assert result.outcome is Outcome.SUCCESS and result.resolver == "fast"
    assert slow.calls, "the slow source was started in parallel"
    assert not server.hits("/slow.pdf"), "the slower source stopped before downloading"
    assert not later.calls, "later tiers are not asked once a copy is stored"


def test_a_failing_tier_falls_through_to_the_next(server: Loopback, make_config: Any) -> None:
    page = b"<!DOCTYPE html><html><body>Subscribe to read</body></html>"
    server.routes["/paywall.pdf"] = lambda h: h.reply(200, page, "application/pdf")
    server.routes["/repo.pdf"] = lambda h: h.reply(200, pdf_bytes(), "application/pdf")
    first = Scripted("publisher", [server.url("/paywall.pdf")])
    second = Scripted("repository", [server.url("/repo.pdf")])
    tiers = [
        {"name": "direct", "sources": ["publisher"]},
        {"name": "repo", "sources": ["repository"]},
    ]
    with _downloader(make_config, {"publisher": first, "repository": second}, tiers) as dl:
        result = dl.fetch("10.1234/abc")
    assert result.ok and result.resolver == "repository"


def test_total_budget_stops_a_work_on_time_with_a_clear_reason(make_config: Any) -> None:
    resolvers = {f"s{i}": Scripted(f"s{i}", [], delay=0.4) for i in range(5)}
    tiers = [{"name": f"t{i}", "sources": [f"s{i}"]} for i in range(5)]
    with _downloader(make_config, resolvers, tiers, total_budget_s=1.0) as dl:
        result = dl.fetch("10.1234/abc")
    assert result.reason is Reason.BUDGET and "budget" in result.message
    # stopped at the budget, not after every tier (a slow machine asks fewer, never more)
    assert sum(bool(r.calls) for r in resolvers.values()) < 5  # type: ignore[attr-defined]


def test_the_same_url_is_fetched_once_per_work(server: Loopback, make_config: Any) -> None:
    page = b"<!DOCTYPE html><html><body>no</body></html>"
    server.routes["/x.pdf"] = lambda h: h.reply(200, page, "application/pdf")
    a = Scripted("a", [server.url("/x.pdf")])
    b = Scripted("b", [server.url("/x.pdf?utm=1").replace("?utm=1", "")])
    tiers = [{"name": "one", "sources": ["a"]}, {"name": "two", "sources": ["b"]}]
    with _downloader(make_config, {"a": a, "b": b}, tiers) as dl:
        result = dl.fetch("10.1234/abc")
    assert result.reason is Reason.NOT_PDF
    assert len(server.hits("/x.pdf")) == 1


def test_hints_put_pmc_first_for_a_pmcid_and_arxiv_first_for_an_arxiv_id() -> None:
    assert tiers_for(parse_work("PMC3531190"), DEFAULT_TIERS)[0] == Tier("hint", ("pmc",), False)
    assert tiers_for(parse_work("arXiv:2101.00001"), DEFAULT_TIERS)[0].sources == ("arxiv",)
    plain = tiers_for(parse_work("10.1234/abc"), DEFAULT_TIERS)
    assert plain == list(DEFAULT_TIERS)


def test_no_candidate_anywhere_is_a_skip(make_config: Any) -> None:
    empty = Scripted("empty", [])
    with _downloader(make_config, {"empty": empty}, [{"name": "t", "sources": ["empty"]}]) as dl:
        result = dl.fetch("10.1234/abc")
    assert result.outcome is Outcome.SKIP and result.reason is Reason.NO_CANDIDATE


def test_parallel_sources_really_run_concurrently(make_config: Any) -> None:
    seen: list[float] = []
    ended: list[float] = []
    lock = threading.Lock()

    class Timed(Scripted):
        def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
            with lock:
                seen.append(time.monotonic())
            time.sleep(0.3)
            with lock:
                ended.append(time.monotonic())
            return []

    resolvers: dict[str, Resolver] = {f"p{i}": Timed(f"p{i}", []) for i in range(3)}
    with _downloader(make_config, resolvers, [{"name": "t", "sources": list(resolvers)}]) as dl:
        dl.fetch("10.1234/abc")
    # concurrently: every source started before any of them finished (true at any speed)
    assert len(seen) == 3 and len(ended) == 3
    assert max(seen) < min(ended)


def test_scheduler_choice_resumes_due_parked_works_before_new_input() -> None:
    from oafetch.scheduler import next_action

    base = dict(
        now=10.0,
        running=3,
        max_threads=8,
        parked_count=1,
        max_parked=10,
        input_left=True,
        stopping=False,
        headroom=2,
    )
    assert next_action(**base, parked_due=9.0) == "resume"  # type: ignore[arg-type]
    assert next_action(**base, parked_due=11.0) == "admit"  # type: ignore[arg-type]
    busy = {**base, "running": 6}
    assert next_action(**busy, parked_due=11.0) == "wait"  # type: ignore[arg-type]
    assert next_action(**busy, parked_due=9.0) == "resume"  # type: ignore[arg-type]
    idle = {**base, "running": 0, "parked_count": 0, "input_left": False}
    assert next_action(**idle, parked_due=None) == "done"  # type: ignore[arg-type]
    stopping = {**base, "stopping": True, "running": 0}
    assert next_action(**stopping, parked_due=9.0) == "done"  # type: ignore[arg-type]


def test_a_url_is_fetched_once_per_run_and_identical_bytes_stored_once(
    server: Loopback, make_config: Any, tmp_path: Any
) -> None:
    body = pdf_bytes(seed=5)
    server.routes["/shared.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    server.routes["/copy.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    shared = Scripted("shared", [server.url("/shared.pdf")])
    with _downloader(make_config, {"shared": shared}, [{"name": "t", "sources": ["shared"]}]) as dl:
        first = dl.fetch("10.1234/one")
        second = dl.fetch("10.1234/two")
    assert first.ok and second.ok
    assert len(server.hits("/shared.pdf")) == 1, "the second work reused the first fetch"
    assert second.dedupe_action == "linked"
    assert first.path is not None and second.path is not None and first.path != second.path
    assert first.path.stat().st_ino == second.path.stat().st_ino, "one copy on disk"
    other = Scripted("other", [server.url("/copy.pdf")])
    with _downloader(make_config, {"other": other}, [{"name": "t", "sources": ["other"]}]) as dl:
        third = dl.fetch("10.1234/three")
    assert third.ok and third.sha256 == first.sha256 and third.dedupe_action == "linked"


def test_dry_run_stops_at_the_first_candidate_and_list_only_asks_everyone(
    server: Loopback, make_config: Any, tmp_path: Any
) -> None:
    import json

    a = Scripted("a", [server.url("/a.pdf")])
    b = Scripted("b", [server.url("/b.pdf")])
    tiers = [{"name": "one", "sources": ["a"]}, {"name": "two", "sources": ["b"]}]
    with _downloader(make_config, {"a": a, "b": b}, tiers) as dl:
        dry = list(dl.run(["10.1234/dry"], dry_run=True))
        listed = list(dl.run(["10.1234/list"], list_only=True))
    assert dry[0].outcome is Outcome.SKIP and dry[0].url == server.url("/a.pdf")
    assert listed[0].outcome is Outcome.SKIP
    assert not server.log, "nothing was downloaded"
    rows = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert rows[0]["dry_run"] and rows[0]["candidates"] == [server.url("/a.pdf")]
    assert rows[1]["candidates"] == [server.url("/a.pdf"), server.url("/b.pdf")]
