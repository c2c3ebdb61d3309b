"""Resolvers against real recorded API answers (tests/fixtures/real/api/<source>/, each file's
origin in the SOURCES.tsv beside it), served on loopback. Each test names the defect it pins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from oafetch.errors import ResolverError
from oafetch.resolvers.base import Candidate, Resolver, WorkIds
from oafetch.resolvers.crossref import CrossrefResolver
from oafetch.resolvers.osf import OsfResolver
from oafetch.resolvers.pmc import PmcResolver
from oafetch.resolvers.semantic_scholar import SemanticScholarResolver
from oafetch.resolvers.zenodo import ZenodoResolver
from oafetch.tokens import Kind, Reason, Role
from oafetch.works import parse_work
from test_resolvers_direct import make

REAL = Path(__file__).parent / "fixtures" / "real" / "api"


def real(source: str, name: str) -> Any:
    return json.loads((REAL / source / name).read_text())


def ask(resolver: Resolver, http: Any, ident: str) -> tuple[list[Candidate], WorkIds]:
    work = parse_work(ident)
    ids = WorkIds.of(work)
    with http:
        assert resolver.applies_to(work, ids)
        return resolver.candidates(work, ids, http), ids


def crossref(server: HTTPServer, doi: str, name: str) -> list[Candidate]:
    server.expect_request(f"/works/{doi}").respond_with_json(real("crossref", name))
    resolver, http = make(CrossrefResolver, server)
    return ask(resolver, http, doi)[0]


# -- Crossref ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doi", "name", "page"),
    [
        ("10.1038/srep16696", "srep16696.json", "https://www.nature.com/articles/srep16696"),
        (
            "10.1038/nnano.2014.279",
            "nnano.2014.279.json",
            "http://www.nature.com/articles/nnano.2014.279",
        ),
    ],
)
def test_crossref_text_html_link_is_a_landing_page_never_a_pdf(
    httpserver: HTTPServer, doi: str, name: str, page: str
) -> None:
    """Springer Nature deposits the article's web page as ``content-type: text/html``: it is
    offered as a landing page (its PDF link is followed), not as a PDF file."""
    found = crossref(httpserver, doi, name)
    by_url = {c.url: c for c in found}
    assert by_url[page].role is Role.LANDING and by_url[page].kind is Kind.HTML
    assert [c.url for c in found if c.kind is Kind.PDF] == [page + ".pdf"]
    assert found[-1].url == page  # pages after files


def test_crossref_unescapes_amp_in_link_urls(httpserver: HTTPServer) -> None:
    """ACM's deposited link keeps its XML entities (``?id=…&amp;ftid=…``); the query the
    publisher meant (``&``) is what is fetched."""
    found = crossref(httpserver, "10.1145/2831244.2831252", "acm-2831244.2831252.json")
    assert [c.url for c in found] == [
        "http://dl.acm.org/ft_gateway.cfm?id=2831252&ftid=1643730&dwn=1"
    ]


@pytest.mark.parametrize(
    ("doi", "name", "licence"),
    [
        (
            "10.1136/jclinpath-2020-206745",
            "jclinpath-2020-206745.json",
            "http://creativecommons.org/licenses/by-nc/4.0/",
        ),
        (
            "10.1371/journal.pone.0033693",
            "pone.0033693.json",
            "http://creativecommons.org/licenses/by/4.0/",
        ),
    ],
)
def test_crossref_unspecified_content_version_licence_applies(
    httpserver: HTTPServer, doi: str, name: str, licence: str
) -> None:
    """BMJ and PLOS deposit their CC licence with ``content-version: unspecified``; it applies to
    the ``vor`` link instead of being dropped."""
    found = crossref(httpserver, doi, name)
    assert found and all(c.license == licence for c in found)
    assert found[0].version == "publishedVersion"


def test_crossref_tdm_licence_is_not_a_reader_licence(httpserver: HTTPServer) -> None:
    """nnano.2014.279 has only a ``tdm`` licence (Springer's text-mining terms): no licence."""
    found = crossref(httpserver, "10.1038/nnano.2014.279", "nnano.2014.279.json")
    assert {c.license for c in found} == {None}


def test_crossref_syndication_links_come_after_other_applications(httpserver: HTTPServer) -> None:
    """IEEE deposits the accepted manuscript as a ``syndication`` PDF and the version of record
    as a ``similarity-checking`` link: the similarity-checking link is tried first, the
    syndication one is still offered, last."""
    found = crossref(httpserver, "10.1109/tcomm.2020.3010995", "ieee-tcomm.2020.3010995.json")
    assert [(c.url.split("/")[2], c.version) for c in found] == [
        ("xplorestaging.ieee.org", "publishedVersion"),
        ("ieeexplore.ieee.org", "acceptedVersion"),
    ]
    assert found[1].kind is Kind.PDF and found[0].kind is None  # ``unspecified``: unknown


# -- PMC -----------------------------------------------------------------------------------------


def pmc(server: HTTPServer) -> tuple[Resolver, Any]:
    base = server.url_for("").rstrip("/")
    return make(
        PmcResolver,
        server,
        idconv_url=f"{base}/idconv",
        oa_url=f"{base}/oa.fcgi",
        cloud_url="https://cloud.example",
        ftp_url="https://ftp.example",
    )


def oa_answer(name: str, pmcid: str | None = None, retracted: str | None = None) -> str:
    xml = (REAL / "pmc" / name).read_text()
    if pmcid:  # the recorded record, asked under the converter's PMCID
        xml = xml.replace("PMC7906746", pmcid)
    if retracted:
        xml = xml.replace('retracted="no"', f'retracted="{retracted}"')
    return xml


def test_pmc_cloud_url_uses_the_current_version(httpserver: HTTPServer) -> None:
    """The ID Converter names three versions of PMC1868567, the third ``current``: the cloud
    copy fetched is PMC1868567.3, not .1."""
    httpserver.expect_request(
        "/idconv/",
        query_string={
            "ids": "10.1007/s10162-007-0081-z",
            "format": "json",
            "versions": "yes",
            "tool": "oafetch",
            "email": "tester@oafetch.test",
        },
    ).respond_with_json(real("pmc", "idconv-three-versions.json"))
    httpserver.expect_request("/oa.fcgi").respond_with_data(
        oa_answer("oa-PMC7906746.xml", "PMC1868567"), content_type="text/xml"
    )
    resolver, http = pmc(httpserver)
    found, ids = ask(resolver, http, "10.1007/s10162-007-0081-z")
    assert [c.url for c in found] == ["https://cloud.example/PMC1868567.3/PMC1868567.3.pdf"]
    assert (ids.pmcid, ids.pmid) == ("PMC1868567", "17401604")
    assert found[0].retracted is False


def test_pmc_id_converter_invalid_article_id_is_an_error_not_unknown(
    httpserver: HTTPServer,
) -> None:
    """``status: error`` / ``invalid article id`` is the API refusing the identifier: a
    ``bad-request`` error quoting it, not a silent "not in PMC"."""
    httpserver.expect_request("/idconv/").respond_with_json(
        real("pmc", "idconv-invalid-article-id.json")
    )
    resolver, http = pmc(httpserver)
    with pytest.raises(ResolverError) as info:
        ask(resolver, http, "PMID:7777")
    assert info.value.reason is Reason.BAD_REQUEST
    assert "invalid article id" in str(info.value)


def test_pmc_id_converter_error_status_is_an_error_with_its_message(
    httpserver: HTTPServer,
) -> None:
    """A top-level ``status: error`` (its message URL-encoded) is shown decoded."""
    httpserver.expect_request("/idconv/").respond_with_json(real("pmc", "idconv-error-status.json"))
    resolver, http = pmc(httpserver)
    with pytest.raises(ResolverError) as info:
        ask(resolver, http, "10.1000/x")
    assert info.value.reason is Reason.BAD_REQUEST
    assert "ID type of '26uio' is unknown" in str(info.value)


def test_pmc_retracted_record_is_carried_on_the_candidates(httpserver: HTTPServer) -> None:
    """The recorded PMC7906746 record with its ``retracted`` attribute set to ``yes`` (no
    recorded retracted answer was found): every candidate says the work is retracted."""
    httpserver.expect_request("/idconv/").respond_with_json(
        {"status": "ok", "records": [{"pmcid": "PMC7906746", "doi": "10.1016/x"}]}
    )
    httpserver.expect_request("/oa.fcgi").respond_with_data(
        oa_answer("oa-PMC7906746.xml", retracted="yes"), content_type="text/xml"
    )
    resolver, http = pmc(httpserver)
    found, _ = ask(resolver, http, "PMC7906746")
    assert [c.retracted for c in found] == [True]
    assert found[0].license == "none"


def test_pmc_recorded_not_open_access_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/idconv/").respond_with_json({"status": "ok", "records": []})
    httpserver.expect_request("/oa.fcgi").respond_with_data(
        (REAL / "pmc" / "oa-PMC8550608-not-oa.xml").read_text(), content_type="text/xml"
    )
    resolver, http = pmc(httpserver)
    assert ask(resolver, http, "PMC8550608")[0] == []


# -- Semantic Scholar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ident", "path", "name", "page"),
    [
        (
            "10.2139/ssrn.4337484",
            "/graph/v1/paper/DOI:10.2139/ssrn.4337484",
            "ssrn.4337484.json",
            "https://doi.org/10.2139/ssrn.4337484",
        ),
        (
            "PMID:16153180",
            "/graph/v1/paper/PMID:16153180",
            "pmid-16153180.json",
            "https://doi.org/10.1146/ANNUREV.MICRO.58.030603.123625",
        ),
    ],
)
def test_s2_empty_url_uses_the_page_the_disclaimer_names(
    httpserver: HTTPServer, ident: str, path: str, name: str, page: str
) -> None:
    """``openAccessPdf.url`` is empty and the disclaimer names the source page: it becomes a
    landing page; the Unpaywall API URL it also names (with a placeholder email) does not."""
    httpserver.expect_request(path).respond_with_json(real("semantic_scholar", name))
    resolver, http = make(SemanticScholarResolver, httpserver)
    found, _ = ask(resolver, http, ident)
    assert [(c.url, c.role, c.kind) for c in found] == [(page, Role.LANDING, Kind.HTML)]


# -- OSF -----------------------------------------------------------------------------------------


def osf(server: HTTPServer, file_entity: dict[str, Any]) -> list[Candidate]:
    preprint = real("osf", "preprint-hqb2p_v1.json")
    rel = preprint["data"]["relationships"]["primary_file"]["links"]["related"]
    rel["href"] = server.url_for("/v2/files/5894204f594d900200ed23f2/")
    server.expect_request("/v2/preprints/hqb2p/").respond_with_json(preprint)
    server.expect_request("/v2/files/5894204f594d900200ed23f2/").respond_with_json(file_entity)
    resolver, http = make(OsfResolver, server)
    return ask(resolver, http, "10.31235/osf.io/hqb2p")[0]


def test_osf_pdf_primary_file_is_a_pdf_candidate(httpserver: HTTPServer) -> None:
    """The documented file entity (OSC2012.pdf) is offered at its download link."""
    found = osf(httpserver, real("osf", "file-553e69248c5e4a219919ea54.json"))
    assert [(c.url, c.kind) for c in found] == [
        (
            "https://files.osf.io/v1/resources/ezcuj/providers/osfstorage/553e69248c5e4a219919ea54",
            Kind.PDF,
        )
    ]


def test_osf_docx_primary_file_is_not_offered_as_a_pdf(httpserver: HTTPServer) -> None:
    """The documented file entity renamed to a ``.docx`` (many preprints' primary file; no
    recorded one was found): no candidate, instead of a Word file taken for a PDF."""
    entity = real("osf", "file-553e69248c5e4a219919ea54.json")
    entity["data"]["attributes"]["name"] = "OSC2012.docx"
    entity["data"]["attributes"]["materialized_path"] = "/OSC2012.docx"
    assert osf(httpserver, entity) == []


# -- Zenodo --------------------------------------------------------------------------------------


def test_zenodo_pdf_file_carries_its_md5_and_content_link(httpserver: HTTPServer) -> None:
    """Record 16416531 lists a PDF, a .docx, a zip and a csv.gz: only index.pdf is offered, at
    its ``/content`` link, with the md5 the record lists for it."""
    record = real("zenodo", "record-16416531.json")["hits"]["hits"][0]
    httpserver.expect_request("/api/records/16416531").respond_with_json(record)
    resolver, http = make(ZenodoResolver, httpserver)
    found, _ = ask(resolver, http, "10.5281/zenodo.16416531")
    assert [(c.url, c.md5) for c in found] == [
        (
            "https://zenodo.org/api/records/16416531/files/index.pdf/content",
            "16e89b7e2269ad0239243dbbaff84dd5",
        )
    ]
    assert found[0].license == "cc-by-4.0"
