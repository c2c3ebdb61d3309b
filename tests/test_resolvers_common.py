"""What every resolver shares: the source list, endpoints and credentials, candidate
collection, identifier learning, and the landing-page link extractor (property-tested)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oafetch.config import Config
from oafetch.errors import ConfigError
from oafetch.resolvers.base import WorkIds
from oafetch.resolvers.common import Found, error_body, learn_from_url, legacy_pmc_pdf, same_doi
from oafetch.resolvers.landing_page import LandingPageResolver, extract_links
from oafetch.resolvers.registry import build_resolvers, resolver_classes
from oafetch.resolvers.sources import ALL
from oafetch.tokens import Role

NAMES = {
    "openalex",
    "unpaywall",
    "crossref",
    "arxiv",
    "pmc",
    "europe_pmc",
    "semantic_scholar",
    "core",
    "doaj",
    "zenodo",
    "figshare",
    "hal",
    "osf",
    "openaire",
    "wayback",
    "openalex_content",
}
QUIET = {"telemetry": {"enabled": False}, "mailto": "tester@oafetch.test"}


def test_every_source_is_listed_once_by_its_name() -> None:
    assert {cls.name for cls in ALL} == NAMES and len(ALL) == len(NAMES)
    assert LandingPageResolver not in ALL
    assert set(resolver_classes()) == NAMES | {"landing_page"}


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.name)
def test_endpoints_are_absolute_https_defaults(cls: type) -> None:
    assert "base_url" in cls.endpoints
    for key, url in cls.endpoints.items():
        assert key.endswith("_url")
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.hostname and not url.endswith("/")


def test_every_endpoint_key_is_accepted_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_API_KEY", "core-key-123")
    resolvers = {
        cls.name: {k: f"http://127.0.0.1:9/{cls.name}/{k}" for k in cls.endpoints} for cls in ALL
    }
    resolvers["openalex_content"].update(enabled=True, api_key="content-key-123")
    built, notes = build_resolvers(Config(resolvers=resolvers, **QUIET))
    assert set(built) == NAMES | {"landing_page"} and notes == []
    for cls in ALL:
        resolver = built[cls.name]
        assert resolver.base_url == f"http://127.0.0.1:9/{cls.name}/base_url"
        for key in cls.endpoints:
            if key != "base_url":
                assert resolver.urls[key] == f"http://127.0.0.1:9/{cls.name}/{key}"


def test_misspelt_endpoint_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cloud_url"):
        build_resolvers(Config(resolvers={"pmc": {"clod_url": "http://x"}}, **QUIET))


def test_optional_keys_come_from_settings_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2_API_KEY", "from-env")
    monkeypatch.delenv("OPENALEX_API_KEY", raising=False)
    monkeypatch.delenv("CORE_API_KEY", raising=False)
    config = Config(resolvers={"openalex": {"api_key": "from-settings"}}, **QUIET)
    built, notes = build_resolvers(config)
    assert built["openalex"].secret == "from-settings"
    assert built["semantic_scholar"].secret == "from-env"
    assert built["pmc"].secret is None
    assert "core" not in built and len(notes) == 1
    # Unpaywall's email falls back to the run's mailto.
    assert built["unpaywall"].secret == "tester@oafetch.test"


def test_found_orders_files_first_dedupes_and_drops_junk() -> None:
    ids = WorkIds()
    found = Found("x", ids)
    found.add("https://a.example/page", Role.LANDING)
    found.add("https://a.example/page", Role.ARTIFACT)
    found.add("https://b.example/landing", Role.LANDING)
    found.add("https://b.example/file.pdf", version="publishedVersion", license=" ")
    for junk in (None, "", "  ", "ftp://x/a.pdf", "/relative.pdf", "javascript:x", 5, ["u"]):
        found.add(junk)
    found.add("https://pmc.ncbi.nlm.nih.gov/articles/PMC77/pdf/x.pdf")
    assert [(c.url, c.role, c.license) for c in found.result()] == [
        ("https://a.example/page", Role.ARTIFACT, None),
        ("https://b.example/file.pdf", Role.ARTIFACT, None),
        ("https://b.example/landing", Role.LANDING, None),
    ]
    assert ids.pmcid == "PMC77"


@pytest.mark.parametrize(
    ("url", "learnt"),
    [
        ("https://arxiv.org/abs/2101.00001v2", {"arxiv": "2101.00001"}),
        ("http://arxiv.org/pdf/math.GT/0309136v1.pdf", {"arxiv": "math/0309136"}),
        ("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC3531190/", {"pmcid": "PMC3531190"}),
        ("https://europepmc.org/articles/PMC3531190?pdf=render", {"pmcid": "PMC3531190"}),
        ("https://pubmed.ncbi.nlm.nih.gov/23193287/", {"pmid": "23193287"}),
        ("https://publisher.example/articles/PMC1/", {}),
    ],
)
def test_learn_from_repository_urls(url: str, learnt: dict[str, str]) -> None:
    ids = WorkIds()
    learn_from_url(ids, url)
    got = {k: getattr(ids, k) for k in ("arxiv", "pmcid", "pmid") if getattr(ids, k)}
    assert got == learnt


def test_legacy_pmc_pdf_pages_are_recognised() -> None:
    assert legacy_pmc_pdf("https://pmc.ncbi.nlm.nih.gov/articles/PMC9/pdf/") == "PMC9"
    assert legacy_pmc_pdf("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC9/pdf/a.pdf") == "PMC9"
    assert legacy_pmc_pdf("https://pmc.ncbi.nlm.nih.gov/articles/PMC9/") is None
    assert legacy_pmc_pdf("https://europepmc.org/articles/PMC9?pdf=render") is None


def test_same_doi_and_error_bodies() -> None:
    assert same_doi("https://doi.org/10.1000/ABC", "10.1000/abc")
    assert same_doi("doi:10.1000/abc", "10.1000/ABC")
    assert not same_doi(None, "10.1000/abc") and not same_doi(3, "10.1000/abc")
    assert error_body({"error": True, "message": "bad"}) == "bad"
    assert error_body({"status": "error", "errmsg": "nope"}) == "nope"
    assert error_body({"error": None, "status": "ok"}) is None
    assert error_body({"error": False}) is None


# -- extract_links ----------------------------------------------------------------------------

_HREFS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "/a.pdf",
            "b.pdf",
            "https://x.example/c.pdf",
            "http:d.pdf",
            "//e.example/f",
            "javascript:void(0)",
            "mailto:a@b",
            "data:x",
            "#top",
            "http://[::1/x.pdf",
            "https://[bad/pdf",
            "ftp://g.example/h.pdf",
            " ",
            "\x00",
            "http://h:99999/pdf",
            "?pdf=render",
            "../../up/download.pdf",
            "HTTPS://UPPER.EXAMPLE/X.PDF",
        ]
    ),
)


@st.composite
def pages(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        href = draw(_HREFS).replace('"', "&quot;")
        template = draw(
            st.sampled_from(
                [
                    '<meta name="citation_pdf_url" content="{}">',
                    '<link rel="alternate" type="application/pdf" href="{}">',
                    '<meta http-equiv="refresh" content="0; url={}">',
                    '<a href="{}">Download PDF</a>',
                    '<a href="{}" type="application/pdf">x</a>',
                    '<base href="{}">',
                    '<a href="{}">',
                    "{}",
                    "<{}",
                    '<a href="{}"><b>full text',
                ]
            )
        )
        parts.append(template.format(href))
    return "".join(parts) + draw(st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(
    html=pages(),
    page_url=st.sampled_from(
        ["https://pub.example/article/1", "http://127.0.0.1:8080/a/b?c=d", "https://x.example"]
    ),
)
def test_extract_links_never_crashes_and_returns_absolute_http_urls(
    html: str, page_url: str
) -> None:
    links = extract_links(html, page_url)
    assert len(links) == len(set(links))
    for link in links:
        parts = urlsplit(link)
        assert parts.scheme in ("http", "https")
        assert parts.netloc and parts.hostname


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_extract_links_on_arbitrary_text(html: str) -> None:
    for link in extract_links(html, "https://pub.example/a"):
        assert urlsplit(link).scheme in ("http", "https")
