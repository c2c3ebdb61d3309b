"""Landing pages ranked by how surely a link is the article's own PDF, on real saved pages
(tests/fixtures/real/pages/, origins in SOURCES.tsv) and on the sandbox's supplement-first page;
landing links pass the legacy-PMC filter; Crossref text/html links are pages; Zenodo files are
verified against their md5 through the whole fallback chain."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from loopback import Loopback, pdf_bytes
from oafetch import Candidate, Downloader, Outcome, Reason, Resolver, WorkIds
from oafetch.config import Config, ResolverSettings
from oafetch.demo import demo_config
from oafetch.http.client import HttpClient
from oafetch.resolvers.crossref import CrossrefResolver
from oafetch.resolvers.landing_page import extract_links, followable_links
from oafetch.resolvers.zenodo import ZenodoResolver
from oafetch.sandbox import Behaviour, Corpus, Sandbox, SandboxWork
from oafetch.sandbox_config import config_for
from oafetch.tokens import Kind, Role
from oafetch.works import Work, parse_work

PAGES = Path(__file__).parent / "fixtures" / "real" / "pages"
REAL_API = Path(__file__).parent / "fixtures" / "real" / "api"
PEERJ = "https://peerj.com/articles/4375/"
PEERJ_PDF = "https://peerj.com/articles/4375.pdf"


def page(name: str) -> str:
    return gzip.decompress((PAGES / name).read_bytes()).decode("utf-8")


def without_head(html: str) -> str:
    """The page as a publisher that sends no ``citation_pdf_url`` would serve it."""
    return re.sub(r"(?s)<head\b.*?</head>", "", html, count=1)


# -- real saved pages ----------------------------------------------------------------------------


def test_peerj_page_without_citation_meta_ranks_the_articles_own_pdf_first() -> None:
    """In page order PeerJ lists PDFs its references cite (europa.eu, nsf.gov …) and a
    supporting-information Download long before its own "PDF (2.3MB)" link; the article's PDF
    is ranked first, the cited PDFs after it, the .docx supplement not at all."""
    links = extract_links(without_head(page("peerj-4375.html.gz")), PEERJ)
    assert links[0] == PEERJ_PDF
    assert "https://www.nsf.gov/pubs/2015/nsf15052/nsf15052.pdf" in links[1:]
    assert not any(link.endswith(".docx") for link in links)


def test_peerj_page_citation_pdf_url_first() -> None:
    assert extract_links(page("peerj-4375.html.gz"), PEERJ)[0] == PEERJ_PDF


def test_elife_page_article_pdf_before_figures_pdf() -> None:
    """eLife's "Figures PDF" (a figure supplement) ranks after its "Article PDF"; the figure
    image downloads and video links are not PDFs and are not offered."""
    links = extract_links(page("elife-44753.html.gz"), "https://elifesciences.org/articles/44753")
    assert [link.rsplit("/", 1)[-1].split("?")[0] for link in links] == [
        "elife-44753-v2.pdf",
        "elife-44753-figures-v2.pdf",
    ]


# -- the sandbox's shapes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(corpus=Corpus(seed=11, n_works=120), rates_enforced=False) as box:
        yield box


def anchor_work(sandbox: Sandbox) -> SandboxWork:
    return next(
        w for w in sandbox.works if w.behaviour is Behaviour.LANDING_ONLY and w.variant == "anchor"
    )


def test_sandbox_supplement_first_page_stores_the_article(sandbox: Sandbox, tmp_path: Path) -> None:
    """The anchor-style page lists a CONSORT checklist PDF before the article's own Download
    PDF; both are valid PDFs. The file stored is the article's."""
    work = anchor_work(sandbox)
    html = sandbox_page(sandbox, work)
    assert html.index("CONSORT checklist") < html.index("Download PDF")
    config = demo_config(sandbox, tmp_path / "out", workers=1, cache={"enabled": False})
    with Downloader(config, resume=False) as dl:
        result = dl.fetch(work.identifier)
    assert result.ok and result.sha256 == work.expected_sha256


def sandbox_page(sandbox: Sandbox, work: SandboxWork) -> str:
    import httpx

    page_ = next(p for p in work.pages if p.host == work.publisher)
    return httpx.get(sandbox.url(page_.host, page_.path), timeout=10).text


def test_sandbox_crossref_text_html_link_is_a_landing_page(sandbox: Sandbox) -> None:
    """A Crossref record listing its landing page as ``text/html``: offered as a page."""
    work = next(
        w
        for w in sandbox.works
        if w.index % 2 == 0 and any("crossref" in p.listed_by for p in w.pages)
    )
    config = Config(
        **config_for(sandbox.base_urls, sandbox.rate_policies()),
        politeness={"enabled": False},
        telemetry={"enabled": False},
    )
    resolver = CrossrefResolver(config.resolver("crossref"), config)
    parsed = parse_work(work.identifier)
    with HttpClient(config) as http:
        found = resolver.candidates(parsed, WorkIds.of(parse_work(work.doi)), http)
    pages = [c for c in found if c.role is Role.LANDING]
    assert pages and all(c.kind is Kind.HTML for c in pages)
    assert not [c for c in found if c.kind is Kind.PDF and c.url in {p.url for p in pages}]


def test_landing_links_pass_the_legacy_pmc_filter(sandbox: Sandbox) -> None:
    """The sandbox's PMC article page names its legacy ``/articles/PMC…/pdf/`` PDF (a bot
    wall): the fallback does not follow it, and learns the PMCID instead."""
    work = next(w for w in sandbox.works if w.pmcid)
    import httpx

    url = f"{sandbox.base_urls['pmc_site']}/articles/{work.pmcid}/"
    html = httpx.get(url, timeout=10).text
    assert any("/pdf/" in link for link in extract_links(html, url))
    ids = WorkIds.of(parse_work(work.doi))
    assert followable_links(html, url, ids) == []
    assert ids.pmcid == work.pmcid


# -- Zenodo md5 through the fallback -------------------------------------------------------------


class Offers(Resolver):
    """A second source offering one PDF, for the chain to fall back to."""

    name: ClassVar[str] = "second"

    def __init__(self, url: str) -> None:
        super().__init__(ResolverSettings(), Config())
        self.url = url

    def applies_to(self, work: Work, ids: WorkIds) -> bool:
        return True

    def candidates(self, work: Work, ids: WorkIds, http: HttpClient) -> list[Candidate]:
        return [Candidate(self.url, self.name)]


def zenodo_chain(
    server: Loopback, make_config: Any, checksum: str | None, *, second: bool = True
) -> Downloader:
    """Zenodo answers with the recorded record 16416531, its index.pdf served on loopback."""
    record = json.loads((REAL_API / "zenodo" / "record-16416531.json").read_text())
    hit = record["hits"]["hits"][0]
    for item in hit["files"]:
        item["links"]["self"] = server.url(f"/files/{item['key']}/content")
        if checksum is not None and item["key"] == "index.pdf":
            item["checksum"] = checksum
    served = pdf_bytes(seed=5)
    server.routes["/api/records/16416531"] = lambda h: h.reply(
        200, json.dumps(hit).encode(), "application/json"
    )
    server.routes["/files/index.pdf/content"] = lambda h: h.reply(200, served, "application/pdf")
    server.routes["/other.pdf"] = lambda h: h.reply(200, pdf_bytes(seed=6), "application/pdf")
    tiers = [{"name": "repositories", "sources": ["zenodo"]}]
    resolvers: dict[str, Resolver] = {}
    if second:
        tiers.append({"name": "later", "sources": ["second"]})
        resolvers["second"] = Offers(server.url("/other.pdf"))
    config = make_config(
        resolvers={"zenodo": {"enabled": True, "base_url": server.base}},
        fallback={"tiers": tiers},
    )
    resolvers["zenodo"] = ZenodoResolver(config.resolver("zenodo"), config)
    return Downloader(config, resolvers=resolvers)


def test_zenodo_md5_mismatch_is_a_failed_candidate_with_its_reason(
    server: Loopback, make_config: Any
) -> None:
    """The bytes served for index.pdf are not the file whose md5 Zenodo lists: nothing is
    stored, and the work says ``checksum-mismatch`` with both digests."""
    with zenodo_chain(server, make_config, None, second=False) as dl:
        result = dl.fetch("10.5281/zenodo.16416531")
    assert result.outcome is Outcome.ERROR and result.reason is Reason.CHECKSUM_MISMATCH
    assert "16e89b7e2269ad0239243dbbaff84dd5" in result.message
    assert result.path is None


def test_zenodo_md5_mismatch_lets_the_chain_go_on(server: Loopback, make_config: Any) -> None:
    """After the mismatch the next source's PDF is fetched and stored."""
    with zenodo_chain(server, make_config, None) as dl:
        result = dl.fetch("10.5281/zenodo.16416531")
    assert result.ok and result.resolver == "second"
    assert server.hits("/files/index.pdf/content")


def test_zenodo_md5_match_is_stored(server: Loopback, make_config: Any) -> None:
    """With the checksum set to the served bytes' md5 (``md5:<hex>``), the file is stored."""
    digest = hashlib.md5(pdf_bytes(seed=5)).hexdigest()
    with zenodo_chain(server, make_config, f"md5:{digest}") as dl:
        result = dl.fetch("10.5281/zenodo.16416531")
    assert result.ok and result.resolver == "zenodo"
    assert not server.hits("/other.pdf")


def test_followable_links_leave_out_supplements_and_cited_pdfs() -> None:
    """The fallback follows only what may be the article: eLife's Figures PDF and PeerJ's
    cited PDFs are ranked by the parser but never followed."""
    elife = "https://elifesciences.org/articles/44753"
    html = page("elife-44753.html.gz")
    assert any("figures" in link for link in extract_links(html, elife))
    followed = followable_links(html, elife)
    assert followed and not any("figures" in link for link in followed)
    peerj = without_head(page("peerj-4375.html.gz"))
    assert followable_links(peerj, PEERJ) == [PEERJ_PDF]
    assert len(extract_links(peerj, PEERJ)) > 1
