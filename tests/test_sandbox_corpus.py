"""The sandbox's pure parts: corpus generation, behaviours mix, PDFs, ids and rate checks.

No sockets here: these are the table-driven checks of what the servers are built on.
"""

from __future__ import annotations

import functools
import random
from collections import Counter

import pytest

import oafetch.sandbox as sandbox_pkg
from oafetch.sandbox import Behaviour, Corpus, Mode, RateSpec
from oafetch.sandbox.behaviours import DEFAULT_MIX, UNOBTAINABLE_REASON, allocate
from oafetch.sandbox.ids import norm_arxiv, norm_doi, norm_openalex, norm_pmcid, norm_pmid
from oafetch.sandbox.pdf import PdfFactory
from oafetch.sandbox.publishers import make_publishers
from oafetch.sandbox.ratecheck import SlidingWindow, retry_after_seconds


@functools.cache
def corpus7() -> Corpus:
    """The default corpus (seed 7, 500 works), with small oversized files, built once."""
    return Corpus(7, oversized_bytes=2 * 1024 * 1024)


SMALL = {"n_works": 80, "pdf_size_range": (4_000, 30_000), "oversized_bytes": 2 * 1024 * 1024}


def test_public_api_is_pinned_and_sorted() -> None:
    """The sandbox's front door lists exactly these names, sorted."""
    assert sandbox_pkg.__all__ == sorted(sandbox_pkg.__all__)
    assert sandbox_pkg.__all__ == [
        "Behaviour",
        "Copy",
        "Corpus",
        "LinkStyle",
        "Mode",
        "Page",
        "RateSpec",
        "Sandbox",
        "SandboxWork",
        "Snapshot",
        "serve_forever",
    ]
    for name in sandbox_pkg.__all__:
        assert hasattr(sandbox_pkg, name)


def test_same_seed_gives_same_works_and_hashes() -> None:
    """A corpus is a pure function of its seed and options."""
    a, b = Corpus(3, **SMALL), Corpus(3, **SMALL)  # type: ignore[arg-type]
    assert [w.to_dict() for w in a.works] == [w.to_dict() for w in b.works]
    assert [w.copies for w in a.works] == [w.copies for w in b.works]
    other = Corpus(4, **SMALL)  # type: ignore[arg-type]
    assert [w.identifier for w in a.works] != [w.identifier for w in other.works]


def test_small_corpus_covers_every_behaviour() -> None:
    """Quotas give every behaviour of the default mix at least one work once the corpus is big
    enough; the behaviours whose outcome depends on a setting (TDM reservations, version and
    licence preferences, retractions) are asked for by a mix of their own and leave the default
    corpus as it was."""
    corpus = Corpus(5, **SMALL)  # type: ignore[arg-type]
    assert {w.behaviour for w in corpus.works} == set(DEFAULT_MIX)
    assert set(Behaviour) - set(DEFAULT_MIX) == {
        Behaviour.TDM_RESERVED,
        Behaviour.VERSIONS,
        Behaviour.RETRACTED,
    }


def test_default_mix_is_mostly_obtainable() -> None:
    """About 60 % direct/landing/repository, roughly four in five obtainable overall."""
    corpus = corpus7()
    counts = Counter(w.behaviour for w in corpus.works)
    main = counts[Behaviour.DIRECT_OA] + counts[Behaviour.LANDING_ONLY]
    main += counts[Behaviour.REPOSITORY_ONLY]
    assert 0.55 <= main / 500 <= 0.65
    share = sum(w.expected_obtainable for w in corpus.works) / 500
    assert 0.7 <= share <= 0.9
    kinds = Counter(
        w.identifier.split(":")[0] if ":" in w.identifier else w.identifier[:3]
        for w in corpus.works
    )
    assert kinds["PMID"] and kinds["arXiv"] and kinds["PMC"] and kinds["10."]


def test_expectations_follow_behaviours() -> None:
    """Unobtainable behaviours carry their reason token; challenges with a repo copy are fine."""
    for work in Corpus(9, **SMALL).works:  # type: ignore[arg-type]
        if work.expected_obtainable:
            assert work.expected_reason == "ok"
            assert work.expected_sha256 is not None and work.sources
        else:
            assert work.expected_reason == UNOBTAINABLE_REASON[work.behaviour]
            assert work.expected_sha256 is None and not work.sources
        if work.behaviour is Behaviour.CHALLENGE:
            assert work.expected_obtainable == ("+" in work.variant)


def test_allocate_matches_weights_exactly() -> None:
    """Largest-remainder allocation: exact total, every weight present, shuffled by the rng."""
    picked = allocate(500, DEFAULT_MIX, random.Random(1))
    assert len(picked) == 500
    counts = Counter(picked)
    total = sum(DEFAULT_MIX.values())
    for behaviour, weight in DEFAULT_MIX.items():
        assert abs(counts[behaviour] - 500 * weight / total) < 1
    assert counts[Behaviour.OVERSIZED] >= 1
    assert picked != sorted(picked)
    with pytest.raises(ValueError, match="mix"):
        allocate(10, {Behaviour.NO_OA: 0.0}, random.Random(1))


def test_custom_mix_and_bad_arguments() -> None:
    """Only the behaviours given appear; bad options name the argument."""
    corpus = Corpus(1, n_works=20, mix={"direct_oa": 1, "truncated": 1})
    assert {w.behaviour for w in corpus.works} == {Behaviour.DIRECT_OA, Behaviour.TRUNCATED}
    with pytest.raises(ValueError, match="n_publishers"):
        Corpus(1, n_works=5, n_publishers=3)
    with pytest.raises(ValueError, match="n_works"):
        Corpus(1, n_works=0)


def test_pdf_bytes_look_like_pdfs_of_the_requested_size() -> None:
    """Files start with %PDF-1.7, end with %%EOF, and are exactly the requested size."""
    factory = PdfFactory(1)
    for size in (1_500, 20_000, 400_000):
        data = factory.build("k", "A (title)", size, 123)
        assert data.startswith(b"%PDF-1.7\n") and data.endswith(b"%%EOF\n")
        assert len(data) == size
        assert data == factory.build("k", "A (title)", size, 123)
    assert factory.build("k", "t", 5_000, 0) != factory.build("j", "t", 5_000, 0)
    streamed = b"".join(factory.oversized_chunks(3_000_000, "k", 5, chunk=65_536))
    assert len(streamed) == 3_000_000 and streamed.endswith(b"%%EOF\n")
    assert streamed.startswith(b"%PDF-1.7\n")
    assert streamed != b"".join(factory.oversized_chunks(3_000_000, "j", 5))


def test_identifier_normalisers() -> None:
    """Every usual way of writing an identifier maps to the corpus key."""
    assert norm_doi("https://doi.org/10.5555/SBX.1") == "10.5555/sbx.1"
    assert norm_doi("doi:10.5555/a%28b%29") == "10.5555/a(b)"
    assert norm_arxiv("arXiv:2101.00001v3") == "2101.00001"
    assert norm_arxiv("hep-th/9901001v2") == "hep-th/9901001"
    assert norm_arxiv("math.GT/0309136") == "math.GT/0309136"
    assert norm_arxiv("1234.123456") is None
    assert norm_pmcid("pmc123") == "PMC123" and norm_pmcid("123") is None
    assert norm_pmid("PMID:42") == "42" and norm_pmid("x") is None
    assert norm_openalex("https://openalex.org/W12") == "W12"


def test_corpus_find_accepts_usual_forms() -> None:
    """`find` resolves a work from its DOI, DOI URL, arXiv, PMC, PMID and OpenAlex forms."""
    corpus = corpus7()
    for work in corpus.works:
        assert corpus.find(work.identifier) is work
        assert corpus.find(f"https://doi.org/{work.doi.upper()}") is work
        assert corpus.find(work.openalex_id) is work
        if work.arxiv_id:
            assert corpus.find(f"arXiv:{work.arxiv_id}v1") is work
        if work.pmid:
            assert corpus.find(f"PMID:{work.pmid}") is work
    assert corpus.find("10.9999/nothing") is None


def test_publisher_roles_and_placement() -> None:
    """publisher2 hides /restricted/, publisher3's robots fail; placement respects both."""
    pubs = {p.name: p for p in make_publishers(6)}
    assert not pubs["publisher2"].allows("/restricted/doi/pdf/x")
    assert pubs["publisher3"].robots_txt()[0] == 500 and not pubs["publisher3"].allows("/x")
    assert pubs["publisher4"].robots_txt()[0] == 404
    corpus = corpus7()
    for work in corpus.works:
        if work.behaviour is Behaviour.ROBOTS_DISALLOWED:
            assert work.publisher == "publisher2"
            assert any(c.path.startswith("/restricted/") for c in work.copies)
        if work.publisher == "publisher3":
            assert work.behaviour in {
                Behaviour.NO_OA,
                Behaviour.REPOSITORY_ONLY,
                Behaviour.ARCHIVE_ONLY,
                Behaviour.CHALLENGE,
            }


def test_modes_of_misbehaving_works() -> None:
    """Each behaviour's publisher copy carries the matching serving mode."""
    want = {
        Behaviour.TRUNCATED: Mode.TRUNCATED,
        Behaviour.OVERSIZED: Mode.OVERSIZED,
        Behaviour.HTML_AS_PDF: Mode.HTML_AS_PDF,
        Behaviour.RATE_LIMITED: Mode.RATE_LIMITED,
        Behaviour.FLAPPING: Mode.FLAPPING,
        Behaviour.SLOW_BODY: Mode.SLOW,
        Behaviour.ARCHIVE_ONLY: Mode.GONE,
    }
    for work in Corpus(5, **SMALL).works:  # type: ignore[arg-type]
        if work.behaviour in want:
            assert work.copies[0].mode is want[work.behaviour]


@pytest.mark.parametrize(
    ("text", "count", "period", "canonical"),
    [
        ("10/s", 10, 1.0, "10/s"),
        ("1/3s", 1, 3.0, "1/3s"),
        ("60/min", 60, 60.0, "60/60s"),
        ("100/h", 100, 3600.0, "100/3600s"),
        (" 5 / 2s ", 5, 2.0, "5/2s"),
        (2.5, 5, 2.0, "5/2s"),
        (0.5, 1, 2.0, "1/2s"),
        (10, 10, 1.0, "10/s"),
    ],
)
def test_rate_spec_parse(text: str | float, count: int, period: float, canonical: str) -> None:
    """Rate strings and numbers parse to count/period and print canonically."""
    spec = RateSpec.parse(text)
    assert (spec.count, spec.period, str(spec)) == (count, period, canonical)
    assert RateSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("bad", ["", "fast", "0/s", "3/0s", "1/3parsecs", -1, 0.0])
def test_rate_spec_rejects_nonsense(bad: str | float) -> None:
    """Bad rates raise ValueError quoting the value."""
    with pytest.raises(ValueError, match="rate"):
        RateSpec.parse(bad)


def test_sliding_window_admits_count_per_period_with_tolerance() -> None:
    """Two per second: the third within the window waits; exact pacing is never refused."""
    now = [100.0]
    window = SlidingWindow(RateSpec(2, 1.0), clock=lambda: now[0])
    assert window.check() is None
    assert window.check() is None
    wait = window.check()
    assert wait == pytest.approx(0.95)
    now[0] += 0.94  # inside the tolerance-shortened window (0.95 s): still refused
    assert window.check() is not None
    now[0] += 0.02
    assert window.check() is None
    spaced = SlidingWindow(RateSpec(1, 1.0), clock=lambda: now[0])
    for _ in range(5):
        assert spaced.check() is None
        now[0] += 0.96  # a client 4 % fast because of jitter is forgiven
    assert retry_after_seconds(0.01) == 1 and retry_after_seconds(2.2) == 3
