"""The repository tier's resolvers against a local server speaking each API's real shapes:
arXiv, PMC, Europe PMC, CORE, Zenodo, figshare, HAL, OSF, OpenAIRE and DOAJ."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from oafetch.config import Config
from oafetch.errors import FetchError, ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.arxiv import ArxivResolver
from oafetch.resolvers.base import Candidate, Resolver, WorkIds
from oafetch.resolvers.core import CoreResolver
from oafetch.resolvers.doaj import DoajResolver
from oafetch.resolvers.europe_pmc import EuropePmcResolver
from oafetch.resolvers.figshare import FigshareResolver
from oafetch.resolvers.hal import HalResolver
from oafetch.resolvers.openaire import OpenAireResolver
from oafetch.resolvers.osf import OsfResolver
from oafetch.resolvers.pmc import PmcResolver
from oafetch.resolvers.zenodo import ZenodoResolver
from oafetch.tokens import Kind, Reason, Role
from oafetch.works import parse_work

MAILTO = "tester@oafetch.test"
ATOM = "application/atom+xml"


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("NCBI_API_KEY", "CORE_API_KEY", "OPENAIRE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    yield


def make(
    cls: type[Resolver], server: HTTPServer, config: dict[str, Any] | None = None, **settings: Any
) -> tuple[Resolver, HttpClient]:
    """A resolver pointed at ``server`` and a quick, quiet client."""
    base = server.url_for("").rstrip("/")
    endpoints = {k: base for k in cls.endpoints if k != "base_url"}
    cfg = Config(
        mailto=MAILTO,
        retry={"attempts": 2, "backoff_initial_s": 0, "jitter_s": 0},
        politeness={"enabled": False},
        telemetry={"enabled": False},
        resolvers={cls.name: {"base_url": base, **endpoints, **settings}},
        **(config or {}),
    )
    resolver = cls(cfg.resolver(cls.name), cfg)
    return resolver, HttpClient(cfg, secrets=(resolver.secret or "",))


def run(
    cls: type[Resolver], server: HTTPServer, ident: str, ids: WorkIds | None = None, **settings: Any
) -> tuple[list[Candidate], WorkIds]:
    resolver, http = make(cls, server, **settings)
    work = parse_work(ident)
    ids = ids or WorkIds.of(work)
    with http:
        assert resolver.applies_to(work, ids)
        return resolver.candidates(work, ids, http), ids


# -- arXiv ----------------------------------------------------------------------------------------


def feed(*entries: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom">'
        f"<opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
        + "".join(entries)
        + "</feed>"
    )


ENTRY = (
    "<entry><id>http://arxiv.org/abs/hep-ex/0307015v3</id><title>A title</title>"
    '<link href="http://arxiv.org/abs/hep-ex/0307015v3" rel="alternate" type="text/html"/>'
    '<link title="pdf" href="http://arxiv.org/pdf/hep-ex/0307015v3" rel="related" '
    'type="application/pdf"/><arxiv:doi>10.1529/biophysj.104.047340</arxiv:doi></entry>'
)
ERROR = (
    "<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_x</id><title>Error"
    "</title><summary>incorrect id format for x</summary></entry>"
)


def test_arxiv_pdf_url_on_files_host_and_doi_learnt(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/query", query_string={"id_list": "hep-ex/0307015", "max_results": "1"}
    ).respond_with_data(feed(ENTRY), content_type=ATOM)
    found, ids = run(ArxivResolver, httpserver, "arXiv:hep-ex/0307015")
    base = httpserver.url_for("").rstrip("/")
    assert [(c.url, c.role, c.version) for c in found] == [
        (f"{base}/pdf/hep-ex/0307015", Role.ARTIFACT, "submittedVersion")
    ]
    assert ids.doi == "10.1529/biophysj.104.047340"


def test_arxiv_keeps_the_version_the_user_asked_for(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data(feed(ENTRY), content_type=ATOM)
    found, _ = run(ArxivResolver, httpserver, "hep-ex/0307015v1")
    assert found[0].url.endswith("/pdf/hep-ex/0307015v1")


def test_arxiv_applies_to_a_learnt_id_or_datacite_doi(httpserver: HTTPServer) -> None:
    resolver, http = make(ArxivResolver, httpserver)
    http.close()
    work = parse_work("10.1000/xyz")
    assert not resolver.applies_to(work, WorkIds.of(work))
    assert resolver.applies_to(work, WorkIds(doi="10.1000/xyz", arxiv="2101.00001"))
    assert resolver.applies_to(work, WorkIds(doi="10.48550/arxiv.2101.00001"))


def test_arxiv_empty_feed_means_unknown_id(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/query").respond_with_data(feed(), content_type=ATOM)
    assert run(ArxivResolver, httpserver, "arXiv:2101.99999")[0] == []


@pytest.mark.parametrize("status", [200, 400])
def test_arxiv_error_feed_is_bad_response(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/api/query").respond_with_data(
        feed(ERROR), status=status, content_type=ATOM
    )
    with pytest.raises(ResolverError) as info:
        run(ArxivResolver, httpserver, "arXiv:2101.00001")
    assert info.value.reason is Reason.BAD_RESPONSE


@pytest.mark.parametrize("body", ["<html><body>busy</body></html>", "not xml at all <"])
def test_arxiv_non_feed_is_bad_response(httpserver: HTTPServer, body: str) -> None:
    httpserver.expect_request("/api/query").respond_with_data(body, content_type="text/html")
    with pytest.raises(ResolverError) as info:
        run(ArxivResolver, httpserver, "arXiv:2101.00001")
    assert info.value.reason is Reason.BAD_RESPONSE


# -- PMC ------------------------------------------------------------------------------------------

OA_RECORD = (
    '<OA><responseDate>2025-01-01</responseDate><request id="PMC5334499"/>'
    '<records returned-count="1" total-count="1"><record id="PMC5334499" citation="x" '
    'license="CC BY" retracted="no">'
    '<link format="tgz" href="ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_package/a/b/x.tar.gz"/>'
    '<link format="pdf" href="ftp://ftp.ncbi.nlm.nih.gov/pub/pmc/oa_pdf/a/b/x.pdf"/>'
    "</record></records></OA>"
)


def pmc_server(server: HTTPServer) -> None:
    server.expect_request("/tools/idconv/api/v1/articles/").respond_with_json(
        {
            "status": "ok",
            "records": [
                {
                    "requested-id": "10.1093/nar/gks1195",
                    "pmcid": "PMC5334499",
                    "pmid": 23193287,
                    "doi": "10.1093/nar/gks1195",
                }
            ],
        }
    )
    server.expect_request(
        "/pmc/utils/oa/oa.fcgi",
        query_string={"id": "PMC5334499", "tool": "oafetch", "email": MAILTO},
    ).respond_with_data(OA_RECORD, content_type="text/xml")


def make_pmc(server: HTTPServer) -> tuple[Resolver, HttpClient]:
    base = server.url_for("").rstrip("/")
    return make(
        PmcResolver,
        server,
        idconv_url=f"{base}/tools/idconv/api/v1/articles",
        oa_url=f"{base}/pmc/utils/oa/oa.fcgi",
        cloud_url="https://cloud.example",
        ftp_url="https://ftp.example",
    )


def test_pmc_doi_to_cloud_pdf_then_rewritten_ftp(httpserver: HTTPServer) -> None:
    pmc_server(httpserver)
    resolver, http = make_pmc(httpserver)
    work = parse_work("10.1093/nar/gks1195")
    ids = WorkIds.of(work)
    with http:
        found = resolver.candidates(work, ids, http)
    assert [c.url for c in found] == [
        "https://cloud.example/PMC5334499.1/PMC5334499.1.pdf",
        "https://ftp.example/pub/pmc/oa_pdf/a/b/x.pdf",
    ]
    assert all(c.license == "CC BY" and c.kind is Kind.PDF for c in found)
    assert (ids.pmcid, ids.pmid) == ("PMC5334499", "23193287")
    assert not any("/articles/" in c.url for c in found)


@pytest.mark.parametrize("code", ["idIsNotOpenAccess", "idDoesNotExist"])
def test_pmc_not_open_access_has_no_candidates(httpserver: HTTPServer, code: str) -> None:
    httpserver.expect_request("/pmc/utils/oa/oa.fcgi").respond_with_data(
        f'<OA><responseDate/><error code="{code}">not OA</error></OA>', content_type="text/xml"
    )
    resolver, http = make_pmc(httpserver)
    work = parse_work("PMC123")
    with http:
        assert resolver.candidates(work, WorkIds.of(work), http) == []


def test_pmc_idconv_error_record_means_not_in_pmc(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/tools/idconv/api/v1/articles/").respond_with_json(
        {
            "status": "ok",
            "records": [
                {
                    "requested-id": "99999999",
                    "status": "error",
                    "errmsg": "Identifier not found in PMC",
                }
            ],
        }
    )
    resolver, http = make_pmc(httpserver)
    work = parse_work("PMID:99999999")
    with http:
        assert resolver.candidates(work, WorkIds.of(work), http) == []
    assert len(httpserver.log) == 1  # the OA service is not asked


def test_pmc_sends_optional_key_and_never_shows_it(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCBI_API_KEY", "ncbi-secret-key")
    httpserver.expect_request(
        "/pmc/utils/oa/oa.fcgi",
        query_string={
            "id": "PMC1",
            "tool": "oafetch",
            "email": MAILTO,
            "api_key": "ncbi-secret-key",
        },
    ).respond_with_data("<OA><error code='internalError'>boom</error></OA>")
    resolver, http = make_pmc(httpserver)
    work = parse_work("PMC1")
    with http, pytest.raises(ResolverError) as info:
        resolver.candidates(work, WorkIds.of(work), http)
    assert "ncbi-secret-key" not in str(info.value) and MAILTO not in str(info.value)


# -- Europe PMC -----------------------------------------------------------------------------------

EPMC_RESULT = {
    "id": "42260696",
    "source": "MED",
    "pmid": "42260696",
    "pmcid": "PMC13248438",
    "doi": "10.1186/s43897-026-00231-0",
    "isOpenAccess": "Y",
    "hasPDF": "Y",
    "license": "cc by",
    "fullTextUrlList": {
        "fullTextUrl": [
            {
                "availability": "Subscription required",
                "availabilityCode": "S",
                "documentStyle": "doi",
                "site": "DOI",
                "url": "https://doi.org/10.1186/s43897-026-00231-0",
            },
            {
                "availability": "Open access",
                "availabilityCode": "OA",
                "documentStyle": "pdf",
                "site": "Europe_PMC",
                "url": "https://europepmc.org/articles/PMC13248438?pdf=render",
            },
            {
                "availability": "Free",
                "availabilityCode": "F",
                "documentStyle": "html",
                "site": "Europe_PMC",
                "url": "https://europepmc.org/articles/PMC13248438",
            },
        ]
    },
}


def test_europe_pmc_render_url_and_open_links(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/search",
        query_string={
            "query": 'DOI:"10.1186/s43897-026-00231-0"',
            "resultType": "core",
            "format": "json",
            "pageSize": "5",
        },
    ).respond_with_json(
        {
            "hitCount": 1,
            "resultList": {"result": [{"doi": "10.9999/other", "pmcid": "PMC1"}, EPMC_RESULT]},
        }
    )
    found, ids = run(
        EuropePmcResolver,
        httpserver,
        "10.1186/s43897-026-00231-0",
        render_url="https://europepmc.org",
    )
    assert [(c.url, c.role) for c in found] == [
        ("https://europepmc.org/articles/PMC13248438?pdf=render", Role.ARTIFACT),
        ("https://europepmc.org/articles/PMC13248438", Role.LANDING),
    ]
    assert found[0].license == "cc by"
    assert (ids.pmcid, ids.pmid) == ("PMC13248438", "42260696")


def test_europe_pmc_offers_xml_only_when_accepted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/search").respond_with_json(
        {"resultList": {"result": [{**EPMC_RESULT, "fullTextUrlList": None}]}}
    )
    resolver, http = make(
        EuropePmcResolver, httpserver, config={"download": {"accept": ("pdf", "xml")}}
    )
    work = parse_work("PMC13248438")
    with http:
        found = resolver.candidates(work, WorkIds.of(work), http)
    assert [c.kind for c in found] == [Kind.PDF, Kind.XML]
    assert found[1].url.endswith("/PMC13248438/fullTextXML")


@pytest.mark.parametrize(
    "result",
    [
        {
            "pmcid": "PMC5",
            "isOpenAccess": "N",
            "hasPDF": "N",
            "fullTextUrlList": {
                "fullTextUrl": {
                    "availabilityCode": "S",
                    "documentStyle": "pdf",
                    "url": "https://x.example/a.pdf",
                }
            },
        },
        {"pmcid": "PMC5", "source": "PPR", "isOpenAccess": None, "fullTextUrlList": "junk"},
    ],
)
def test_europe_pmc_closed_or_odd_results(httpserver: HTTPServer, result: dict[str, Any]) -> None:
    httpserver.expect_request("/search").respond_with_json({"resultList": {"result": result}})
    assert run(EuropePmcResolver, httpserver, "PMC5")[0] == []


# -- CORE -----------------------------------------------------------------------------------------

CORE_RESULTS = {
    "totalHits": 1,
    "results": [
        {
            "id": 123456,
            "doi": "10.1000/xyz",
            "downloadUrl": "https://core.ac.uk/download/123456.pdf",
            "sourceFulltextUrls": "https://repo.example/record/1",
            "links": [
                {"type": "download", "url": "https://core.ac.uk/download/pdf/123456.pdf"},
                {"type": "display", "url": "https://core.ac.uk/works/123456"},
            ],
        },
        {"id": 9, "doi": "10.1000/other", "downloadUrl": "https://core.ac.uk/download/9.pdf"},
    ],
}


def test_core_sends_bearer_and_lists_downloads(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        assert request.headers.get("Authorization") == "Bearer core-secret-token"
        assert request.args["q"] == 'doi:"10.1000/xyz"'
        return Response(__import__("json").dumps(CORE_RESULTS), content_type="application/json")

    httpserver.expect_request("/v3/search/works/").respond_with_handler(handler)
    found, _ = run(CoreResolver, httpserver, "10.1000/xyz", api_key="core-secret-token")
    assert [(c.url, c.role) for c in found] == [
        ("https://core.ac.uk/download/123456.pdf", Role.ARTIFACT),
        ("https://core.ac.uk/download/pdf/123456.pdf", Role.ARTIFACT),
        ("https://repo.example/record/1", Role.LANDING),
    ]
    assert not any("core-secret-token" in c.url for c in found)


def test_core_key_never_in_messages(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v3/search/works/").respond_with_json(
        {"message": "Invalid key core-secret-token"}, status=401
    )
    with pytest.raises(FetchError) as info:
        run(CoreResolver, httpserver, "10.1000/xyz", api_key="core-secret-token")
    assert "core-secret-token" not in str(info.value)


def test_core_error_body_is_bad_response(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v3/search/works/").respond_with_json({"message": "oops"})
    with pytest.raises(ResolverError) as info:
        run(CoreResolver, httpserver, "10.1000/xyz", api_key="k" * 20)
    assert info.value.reason is Reason.BAD_RESPONSE


def test_core_is_skipped_without_a_key() -> None:
    from oafetch.resolvers.registry import build_resolvers

    built, notes = build_resolvers(Config(mailto=MAILTO, telemetry={"enabled": False}))
    assert "core" not in built
    assert any("core" in note and "CORE_API_KEY" in note for note in notes)


# -- Zenodo ---------------------------------------------------------------------------------------


def zenodo_record(access: str = "open") -> dict[str, Any]:
    return {
        "id": 17716653,
        "doi": "10.5281/zenodo.17716653",
        "metadata": {"access_right": access, "license": {"id": "cc-by-4.0"}},
        "files": [
            {"key": "mat.zip", "links": {"self": "https://zenodo.org/f/mat.zip/content"}},
            {"key": "paper.PDF", "links": {"self": "https://zenodo.org/f/paper.PDF/content"}},
            "junk",
        ],
    }


def test_zenodo_record_pdf_files_only(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/records/17716653").respond_with_json(zenodo_record())
    found, _ = run(ZenodoResolver, httpserver, "10.5281/zenodo.17716653")
    assert [(c.url, c.license) for c in found] == [
        ("https://zenodo.org/f/paper.PDF/content", "cc-by-4.0")
    ]


def test_zenodo_restricted_record_and_new_files_shape(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/records/1").respond_with_json(zenodo_record("restricted"))
    assert run(ZenodoResolver, httpserver, "10.5281/zenodo.1")[0] == []
    httpserver.expect_request("/api/records/2").respond_with_json(
        {
            "metadata": {},
            "files": {
                "entries": {
                    "a.pdf": {
                        "key": "a.pdf",
                        "links": {"content": "https://zenodo.org/a.pdf/content"},
                    }
                }
            },
        }
    )
    assert [c.url for c in run(ZenodoResolver, httpserver, "10.5281/zenodo.2")[0]] == [
        "https://zenodo.org/a.pdf/content"
    ]


def test_zenodo_searches_other_dois(httpserver: HTTPServer) -> None:
    query = {"q": 'doi:"10.1000/xyz"', "size": "5"}
    hits = [{**zenodo_record(), "doi": "10.1000/XYZ"}, {**zenodo_record(), "doi": "10.1000/other"}]
    httpserver.expect_request("/api/records", query_string=query).respond_with_json(
        {"hits": {"hits": hits}}
    )
    assert len(run(ZenodoResolver, httpserver, "10.1000/xyz")[0]) == 1


# -- figshare -------------------------------------------------------------------------------------

FIGSHARE_ARTICLE = {
    "id": 4805749,
    "doi": "10.6084/m9.figshare.4805749.v1",
    "is_embargoed": False,
    "license": {"name": "CC BY 4.0"},
    "files": [
        {
            "id": 1,
            "name": "x.pdf",
            "is_link_only": False,
            "download_url": "https://ndownloader.figshare.com/files/1",
        },
        {
            "id": 2,
            "name": "y.pdf",
            "is_link_only": True,
            "download_url": "https://elsewhere.example/y.pdf",
        },
        {"id": 3, "name": "data.csv", "download_url": "https://ndownloader.figshare.com/files/3"},
        {"id": 4, "name": "blob", "mimetype": "application/pdf", "download_url": ""},
    ],
}


def test_figshare_article_from_doi(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/articles/4805749").respond_with_json(FIGSHARE_ARTICLE)
    found, _ = run(FigshareResolver, httpserver, "10.6084/m9.figshare.4805749.v1")
    assert [(c.url, c.license) for c in found] == [
        ("https://ndownloader.figshare.com/files/1", "CC BY 4.0")
    ]


def test_figshare_search_then_article_and_embargo(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/v2/articles/search", method="POST", json={"doi": "10.1000/xyz"}
    ).respond_with_json([{"id": 77, "doi": "10.1000/xyz"}, {"id": 78, "doi": "10.1000/no"}])
    httpserver.expect_request("/v2/articles/77").respond_with_json(
        {**FIGSHARE_ARTICLE, "is_embargoed": True}
    )
    assert run(FigshareResolver, httpserver, "10.1000/xyz")[0] == []


# -- HAL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "files", [["https://hal.science/hal-1/file/x.pdf"], "https://hal.science/hal-1/file/x.pdf"]
)
def test_hal_main_file_and_scalar_or_array_files(httpserver: HTTPServer, files: Any) -> None:
    httpserver.expect_request("/search/").respond_with_json(
        {
            "response": {
                "numFound": 1,
                "docs": [
                    {
                        "halId_s": "hal-1",
                        "doiId_s": "10.1000/XYZ",
                        "uri_s": "https://hal.science/hal-1",
                        "fileMain_s": "https://hal.science/hal-1/document",
                        "files_s": files,
                        "openAccess_bool": True,
                        "submitType_s": "file",
                    }
                ],
            }
        }
    )
    found, _ = run(HalResolver, httpserver, "10.1000/xyz")
    assert [(c.url, c.role) for c in found] == [
        ("https://hal.science/hal-1/document", Role.ARTIFACT),
        ("https://hal.science/hal-1/file/x.pdf", Role.ARTIFACT),
        ("https://hal.science/hal-1", Role.LANDING),
    ]


def test_hal_notice_only_record_has_no_candidates(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/search/").respond_with_json(
        {
            "response": {
                "docs": [
                    {
                        "halId_s": "hal-2",
                        "doiId_s": ["10.1000/xyz"],
                        "uri_s": "https://hal.science/hal-2",
                        "submitType_s": "notice",
                    }
                ]
            }
        }
    )
    assert run(HalResolver, httpserver, "10.1000/xyz")[0] == []


def test_hal_solr_error_is_bad_response(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/search/").respond_with_json({"error": {"msg": "undefined field"}})
    with pytest.raises(ResolverError):
        run(HalResolver, httpserver, "10.1000/xyz")


# -- OSF ------------------------------------------------------------------------------------------


def test_osf_preprint_primary_file_download(httpserver: HTTPServer) -> None:
    file_url = httpserver.url_for("/v2/files/5f00/")
    httpserver.expect_request("/v2/preprints/abcde/").respond_with_json(
        {
            "data": {
                "id": "abcde",
                "type": "preprints",
                "attributes": {"title": "t"},
                "relationships": {"primary_file": {"links": {"related": {"href": file_url}}}},
            }
        }
    )
    httpserver.expect_request("/v2/files/5f00/").respond_with_json(
        {"data": {"links": {"download": "https://osf.io/download/5f00/"}}}
    )
    found, _ = run(OsfResolver, httpserver, "10.31234/osf.io/abcde_v2")
    assert [(c.url, c.version) for c in found] == [
        ("https://osf.io/download/5f00/", "submittedVersion")
    ]


def test_osf_withdrawn_preprint_and_other_dois(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/preprints/zzzzz/").respond_with_json(
        {
            "data": {
                "attributes": {"date_withdrawn": "2020-01-01"},
                "relationships": {"primary_file": None},
            }
        }
    )
    assert run(OsfResolver, httpserver, "10.31234/osf.io/zzzzz")[0] == []
    resolver, http = make(OsfResolver, httpserver)
    http.close()
    work = parse_work("10.1000/xyz")
    assert not resolver.applies_to(work, WorkIds.of(work))


# -- OpenAIRE -------------------------------------------------------------------------------------

OPENAIRE = {
    "header": {"numFound": 1},
    "results": [
        {
            "id": "x",
            "pids": [
                {"scheme": "doi", "value": "10.1000/XYZ"},
                {"scheme": "pmc", "value": "PMC77"},
            ],
            "bestAccessRight": {"label": "OPEN"},
            "instances": [
                {
                    "type": "Article",
                    "urls": ["https://repo.example/rec/1", "https://repo.example/rec/1.pdf"],
                    "license": "CC BY",
                },
                {"urls": "https://closed.example/x", "accessRight": {"label": "CLOSED"}},
            ],
        },
        {
            "id": "y",
            "pids": [{"scheme": "doi", "value": "10.1000/other"}],
            "instances": [{"urls": ["https://other.example/"]}],
        },
    ],
}


def test_openaire_open_instances_of_the_matching_product(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/graph/v1/researchProducts", query_string={"pid": "10.1000/xyz"}
    ).respond_with_json(OPENAIRE)
    found, ids = run(OpenAireResolver, httpserver, "10.1000/xyz")
    assert [(c.url, c.role, c.license) for c in found] == [
        ("https://repo.example/rec/1.pdf", Role.ARTIFACT, "CC BY"),
        ("https://repo.example/rec/1", Role.LANDING, "CC BY"),
    ]
    assert ids.pmcid == "PMC77"


def test_openaire_throttled_after_retries(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/graph/v1/researchProducts").respond_with_json(
        {"error": "Too many requests"}, status=429
    )
    with pytest.raises(FetchError) as info:
        run(OpenAireResolver, httpserver, "10.1000/xyz")
    assert info.value.reason is Reason.THROTTLED


# -- DOAJ -----------------------------------------------------------------------------------------


def test_doaj_fulltext_links_are_pages(httpserver: HTTPServer) -> None:
    httpserver.expect_request('/api/search/articles/doi:"10.1000/xyz"').respond_with_json(
        {
            "total": 1,
            "results": [
                {
                    "bibjson": {
                        "identifier": [{"type": "doi", "id": "10.1000/xyz"}],
                        "link": [
                            {
                                "type": "fulltext",
                                "url": "https://publisher.example/article/1",
                                "content_type": "HTML",
                            },
                            {
                                "type": "fulltext",
                                "url": "https://publisher.example/article/1.pdf",
                                "content_type": "PDF",
                            },
                        ],
                    }
                }
            ],
        }
    )
    found, _ = run(DoajResolver, httpserver, "10.1000/xyz")
    assert [(c.url, c.role) for c in found] == [
        ("https://publisher.example/article/1.pdf", Role.ARTIFACT),
        ("https://publisher.example/article/1", Role.LANDING),
    ]
    assert "%22" in httpserver.log[0][0].full_path or '"' in httpserver.log[0][0].full_path


def test_doaj_other_article_or_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request('/api/search/articles/doi:"10.1000/xyz"').respond_with_json(
        {
            "results": [
                {
                    "bibjson": {
                        "identifier": {"type": "doi", "id": "10.1000/nope"},
                        "link": [{"type": "fulltext", "url": "https://x.example/"}],
                    }
                }
            ]
        }
    )
    assert run(DoajResolver, httpserver, "10.1000/xyz")[0] == []
    httpserver.clear()
    httpserver.expect_request('/api/search/articles/doi:"10.1000/xyz"').respond_with_json(
        {"error": "Query too complex"}
    )
    with pytest.raises(ResolverError):
        run(DoajResolver, httpserver, "10.1000/xyz")
