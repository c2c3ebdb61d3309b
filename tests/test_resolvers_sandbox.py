"""Every resolver against the sandbox web, tier by tier as the fallback chain asks them: each
source the sandbox says leads to a work's file must offer that file (or its page), and the
sandbox configuration must point every resolver at the sandbox and nowhere else."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from oafetch.config import Config
from oafetch.errors import FetchError
from oafetch.fallback_state import DEFAULT_TIERS
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds
from oafetch.resolvers.registry import build_resolvers
from oafetch.sandbox import Behaviour, Corpus, Sandbox, SandboxWork
from oafetch.sandbox.model import GOOD_MODES
from oafetch.sandbox_config import SANDBOX_CORE_KEY, config_for
from oafetch.tokens import Role
from oafetch.works import parse_work

CHAINED = [name for tier in DEFAULT_TIERS[:2] for name in tier.sources]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(corpus=Corpus(seed=11, n_works=120), rates_enforced=False) as box:
        yield box


@pytest.fixture(scope="module")
def setup(sandbox: Sandbox) -> Iterator[tuple[dict[str, Resolver], HttpClient]]:
    config = Config(
        **config_for(sandbox.base_urls, sandbox.rate_policies()),
        politeness={"enabled": False},
        telemetry={"enabled": False},
        retry={"attempts": 2, "backoff_initial_s": 0, "jitter_s": 0},
    )
    built, notes = build_resolvers(config)
    assert notes == []
    with HttpClient(config) as http:
        yield built, http


def chain(
    work: SandboxWork, resolvers: dict[str, Resolver], http: HttpClient
) -> tuple[dict[str, list[Candidate]], WorkIds]:
    """Ask the direct and repository tiers in order, sharing what they learn, and ask again
    the sources that apply only once a later one taught them an id (a W id's DOI …)."""
    parsed = parse_work(work.identifier)
    ids = WorkIds.of(parsed)
    found: dict[str, list[Candidate]] = {}
    for name in CHAINED + CHAINED:
        resolver = resolvers[name]
        if name not in found and resolver.applies_to(parsed, ids):
            found[name] = resolver.candidates(parsed, ids, http)
            ids.note_urls([c.url for c in found[name]])
    return found, ids


def test_every_source_that_leads_to_the_file_offers_it(
    sandbox: Sandbox, setup: tuple[dict[str, Resolver], HttpClient]
) -> None:
    resolvers, http = setup
    checked = 0
    for work in sandbox.works:
        found, ids = chain(work, resolvers, http)
        listed_urls = {
            name: {sandbox.url(c.host, c.path) for c in work.copies if name in c.listed_by}
            | {sandbox.url(p.host, p.path) for p in work.pages if name in p.listed_by}
            | {sandbox.urls.doi_url(work.doi), sandbox.urls.doi_url(work.doi.lower())}
            for name in CHAINED
        }
        for name in set(work.sources) & set(CHAINED):
            assert name in found, f"{name} did not apply to {work.identifier} ({ids})"
            urls = {c.url for c in found[name]}
            assert urls & listed_urls[name], (name, work.identifier, urls)
            checked += 1
        # What a source learns is right.
        assert ids.doi == work.doi.lower()
        if work.pmcid and "pmc" in work.sources:
            assert ids.pmcid == work.pmcid
    assert checked > 100


def test_no_oa_works_get_no_file_candidates(
    sandbox: Sandbox, setup: tuple[dict[str, Resolver], HttpClient]
) -> None:
    resolvers, http = setup
    good = {
        sandbox.url(c.host, c.path) for w in sandbox.works for c in w.copies if c.mode in GOOD_MODES
    }
    for work in (w for w in sandbox.works if w.behaviour is Behaviour.NO_OA):
        found, _ = chain(work, resolvers, http)
        offered = {c.url for cands in found.values() for c in cands if c.role is Role.ARTIFACT}
        assert not offered & good


def test_wayback_finds_the_archived_pdf_of_archive_only_works(
    sandbox: Sandbox, setup: tuple[dict[str, Resolver], HttpClient]
) -> None:
    resolvers, http = setup
    works = [w for w in sandbox.works if w.behaviour is Behaviour.ARCHIVE_ONLY]
    assert works
    for work in works:
        _, ids = chain(work, resolvers, http)
        parsed = parse_work(work.identifier)
        wayback = resolvers["wayback"]
        assert wayback.applies_to(parsed, ids)
        found = wayback.candidates(parsed, ids, http)
        files = [c for c in found if c.role is Role.ARTIFACT]
        assert files and "id_/" in files[0].url
        with http.stream(files[0].url, role=Role.ARTIFACT) as response:
            body = response.read()
        assert hashlib.sha256(body).hexdigest() == work.expected_sha256


def test_pmc_never_offers_the_bot_wall(
    sandbox: Sandbox, setup: tuple[dict[str, Resolver], HttpClient]
) -> None:
    resolvers, http = setup
    wall = urlsplit(sandbox.base_urls["pmc_site"]).netloc
    for work in (w for w in sandbox.works if w.pmcid):
        found, _ = chain(work, resolvers, http)
        assert not any(urlsplit(c.url).netloc == wall for cands in found.values() for c in cands)


def test_unpaywall_placeholder_email_is_refused_by_the_sandbox(
    sandbox: Sandbox, setup: tuple[dict[str, Resolver], HttpClient]
) -> None:
    _, http = setup
    config = Config(
        **{**config_for(sandbox.base_urls, {}), "mailto": "me@example.com"},
        telemetry={"enabled": False},
        politeness={"enabled": False},
    )
    built, _ = build_resolvers(config)
    work = parse_work(next(w.doi for w in sandbox.works if w.publisher))
    with pytest.raises(FetchError) as info:
        built["unpaywall"].candidates(work, WorkIds.of(work), http)
    assert info.value.reason == "bad-request" and "me@example.com" not in str(info.value)


def test_config_for_points_everything_at_the_sandbox(sandbox: Sandbox) -> None:
    settings = config_for(sandbox.base_urls, sandbox.rate_policies())
    hosts = {urlsplit(u).netloc for u in sandbox.base_urls.values()}
    built, notes = build_resolvers(Config(**settings, telemetry={"enabled": False}))
    assert notes == [] and len(built) == 16
    for resolver in built.values():
        for url in (resolver.base_url, *resolver.urls.values()):
            assert urlsplit(url).netloc in hosts, (resolver.name, url)
    assert settings["resolvers"]["core"]["api_key"] == SANDBOX_CORE_KEY
    assert settings["rates"] == sandbox.rate_policies()


def test_config_for_disables_resolvers_whose_services_are_missing() -> None:
    settings = config_for({"unpaywall": "http://127.0.0.9:1"}, {})
    assert settings["resolvers"]["unpaywall"] == {"base_url": "http://127.0.0.9:1"}
    assert settings["resolvers"]["pmc"] == {"enabled": False}
    assert "api_key" not in settings["resolvers"]["core"]
    built, _ = build_resolvers(Config(**settings, telemetry={"enabled": False}))
    assert set(built) == {"unpaywall"}
