"""The direct tier's resolvers (Unpaywall, OpenAlex, Crossref, Semantic Scholar) against a
local server speaking each API's real shapes, including their odd and broken answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from oafetch.config import Config
from oafetch.errors import FetchError, ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, Resolver, WorkIds
from oafetch.resolvers.crossref import CrossrefResolver
from oafetch.resolvers.openalex import SELECT, OpenAlexResolver
from oafetch.resolvers.semantic_scholar import SemanticScholarResolver
from oafetch.resolvers.unpaywall import UnpaywallResolver
from oafetch.tokens import Reason, Role
from oafetch.works import parse_work

MAILTO = "tester@oafetch.test"


def make(cls: type[Resolver], server: HTTPServer, **settings: Any) -> tuple[Resolver, HttpClient]:
    """A resolver pointed at ``server`` and a quick, quiet client."""
    config = Config(
        mailto=MAILTO,
        retry={"attempts": 2, "backoff_initial_s": 0, "jitter_s": 0},
        politeness={"enabled": False},
        telemetry={"enabled": False},
        resolvers={cls.name: {"base_url": server.url_for("").rstrip("/"), **settings}},
    )
    resolver = cls(config.resolver(cls.name), config)
    return resolver, HttpClient(config, secrets=(resolver.secret or "",))


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("UNPAYWALL_EMAIL", "OPENALEX_API_KEY", "S2_API_KEY", "CROSSREF_MAILTO"):
        monkeypatch.delenv(var, raising=False)
    yield


def run(
    cls: type[Resolver], server: HTTPServer, ident: str, **settings: Any
) -> tuple[list[Candidate], WorkIds]:
    resolver, http = make(cls, server, **settings)
    work = parse_work(ident)
    ids = WorkIds.of(work)
    with http:
        assert resolver.applies_to(work, ids)
        return resolver.candidates(work, ids, http), ids


# -- Unpaywall ------------------------------------------------------------------------------------

UNPAYWALL_RECORD = {
    "doi": "10.1038/nature12373",
    "is_oa": True,
    "oa_status": "bronze",
    "best_oa_location": {
        "url": "https://www.nature.com/articles/nature12373.pdf",
        "url_for_pdf": "https://www.nature.com/articles/nature12373.pdf",
        "url_for_landing_page": "https://doi.org/10.1038/nature12373",
        "host_type": "publisher",
        "version": "publishedVersion",
        "license": None,
        "evidence": "open (via free pdf)",
    },
    "oa_locations": [
        {
            "host_type": "repository",
            "pmh_id": "oai:arXiv.org:1304.1068",
            "url_for_pdf": None,
            "url_for_landing_page": "https://arxiv.org/abs/1304.1068",
            "url": "https://arxiv.org/abs/1304.1068",
            "version": "submittedVersion",
            "evidence": "oa repository (via OAI-PMH dx.doi.org link)",
        },
        {
            "host_type": "repository",
            "url_for_pdf": "https://www.ncbi.nlm.nih.gov/pmc/articles/PMC3531190/pdf/",
            "url_for_landing_page": None,
            "url": "",
            "version": "publishedVersion",
        },
    ],
}


def test_unpaywall_best_location_first_then_repositories(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/v2/10.1038/nature12373", query_string={"email": MAILTO}
    ).respond_with_json(UNPAYWALL_RECORD)
    found, ids = run(UnpaywallResolver, httpserver, "10.1038/nature12373")
    assert [(c.url, c.role) for c in found] == [
        ("https://www.nature.com/articles/nature12373.pdf", Role.ARTIFACT),
        ("https://doi.org/10.1038/nature12373", Role.LANDING),
        ("https://arxiv.org/abs/1304.1068", Role.LANDING),
    ]
    assert found[0].version == "publishedVersion" and found[0].host_type == "publisher"
    assert found[0].license is None and found[0].source == "unpaywall"
    # The legacy PMC PDF page (a bot wall) is dropped; its PMCID and the arXiv id are learnt.
    assert ids.arxiv == "1304.1068" and ids.pmcid == "PMC3531190"


def test_unpaywall_closed_work_has_no_candidates(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/10.1000/closed").respond_with_json(
        {"doi": "10.1000/closed", "is_oa": False, "best_oa_location": None, "oa_locations": []}
    )
    assert run(UnpaywallResolver, httpserver, "10.1000/closed")[0] == []


def test_unpaywall_404_means_unknown_not_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/10.1000/unknown").respond_with_json(
        {"HTTP_status_code": 404, "error": True, "message": "not in Unpaywall"}, status=404
    )
    assert run(UnpaywallResolver, httpserver, "10.1000/unknown")[0] == []


def test_unpaywall_422_is_bad_request_without_the_email(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/10.1000/x").respond_with_json(
        {"error": True, "message": "Please use your own email address in API calls."}, status=422
    )
    with pytest.raises(ResolverError) as info:
        run(UnpaywallResolver, httpserver, "10.1000/x", email="someone@example.com")
    assert info.value.reason is Reason.BAD_REQUEST
    assert "someone@example.com" not in str(info.value)
    assert "someone%40example.com" not in str(info.value)


def test_unpaywall_email_setting_beats_env_and_mailto(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNPAYWALL_EMAIL", "env@oafetch.test")
    httpserver.expect_request(
        "/v2/10.1000/a", query_string={"email": "env@oafetch.test"}
    ).respond_with_json({"doi": "10.1000/a", "best_oa_location": None})
    assert run(UnpaywallResolver, httpserver, "10.1000/a")[0] == []


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b'{"doi": "10.1000/a"',
        b"[1, 2]",
        b'{"error": true, "message": "internal"}',
    ],
)
def test_unpaywall_unusable_answers_are_bad_response(httpserver: HTTPServer, body: bytes) -> None:
    httpserver.expect_request("/v2/10.1000/a").respond_with_data(
        body, content_type="application/json"
    )
    with pytest.raises(ResolverError) as info:
        run(UnpaywallResolver, httpserver, "10.1000/a")
    assert info.value.reason is Reason.BAD_RESPONSE
    assert MAILTO not in str(info.value)


def test_unpaywall_odd_locations_never_crash(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/10.1000/a").respond_with_json(
        {
            "doi": None,
            "best_oa_location": "nonsense",
            "oa_locations": {
                "url_for_pdf": "https://repo.example/a.pdf",
                "version": 3,
                "license": "cc-by",
                "host_type": None,
            },
        }
    )
    found, _ = run(UnpaywallResolver, httpserver, "10.1000/a")
    assert [(c.url, c.version, c.license) for c in found] == [
        ("https://repo.example/a.pdf", None, "cc-by")
    ]


# -- OpenAlex -------------------------------------------------------------------------------------

OPENALEX_RECORD = {
    "id": "https://openalex.org/W2741809807",
    "doi": "https://doi.org/10.7717/peerj.4375",
    "ids": {
        "pmid": "https://pubmed.ncbi.nlm.nih.gov/29456894",
        "pmcid": "https://www.ncbi.nlm.nih.gov/pmc/articles/5815332",
    },
    "open_access": {
        "is_oa": True,
        "oa_status": "gold",
        "oa_url": "https://peerj.com/articles/4375.pdf",
    },
    "best_oa_location": {
        "is_oa": True,
        "landing_page_url": "https://doi.org/10.7717/peerj.4375",
        "pdf_url": "https://peerj.com/articles/4375.pdf",
        "source": {"display_name": "PeerJ", "type": "journal"},
        "license": "cc-by",
        "version": "publishedVersion",
    },
    "locations": [
        {
            "is_oa": True,
            "landing_page_url": "https://arxiv.org/abs/1705.01234",
            "pdf_url": None,
            "version": "acceptedVersion",
            "license": None,
            "source": {"type": "repository"},
        },
        {
            "is_oa": False,
            "landing_page_url": "https://closed.example/x",
            "pdf_url": "https://closed.example/x.pdf",
            "source": None,
        },
        None,
    ],
}


def test_openalex_locations_and_learnt_ids(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/doi:10.7717/peerj.4375").respond_with_json(OPENALEX_RECORD)
    found, ids = run(OpenAlexResolver, httpserver, "10.7717/peerj.4375")
    assert [(c.url, c.role, c.host_type) for c in found] == [
        ("https://peerj.com/articles/4375.pdf", Role.ARTIFACT, "publisher"),
        ("https://doi.org/10.7717/peerj.4375", Role.LANDING, "publisher"),
        ("https://arxiv.org/abs/1705.01234", Role.LANDING, "repository"),
    ]
    assert found[0].license == "cc-by"
    assert (ids.openalex, ids.pmid, ids.pmcid, ids.arxiv) == (
        "W2741809807",
        "29456894",
        "PMC5815332",
        "1705.01234",
    )


@pytest.mark.parametrize(
    ("ident", "path"),
    [
        ("W2741809807", "/works/W2741809807"),
        ("PMC5815332", "/works/pmcid:PMC5815332"),
        ("PMID:29456894", "/works/pmid:29456894"),
    ],
)
def test_openalex_asks_by_any_id(httpserver: HTTPServer, ident: str, path: str) -> None:
    httpserver.expect_request(path).respond_with_json(
        {"id": "https://openalex.org/W1", "best_oa_location": None}
    )
    assert run(OpenAlexResolver, httpserver, ident)[0] == []


def test_openalex_sends_optional_api_key_and_hides_it(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENALEX_API_KEY", "oa-secret-key-123")
    httpserver.expect_request(
        "/works/doi:10.1000/a", query_string={"select": SELECT, "api_key": "oa-secret-key-123"}
    ).respond_with_data(b"not json")
    resolver, http = make(OpenAlexResolver, httpserver)
    assert resolver.secret == "oa-secret-key-123"
    with http, pytest.raises(ResolverError) as info:
        work = parse_work("10.1000/a")
        resolver.candidates(work, WorkIds.of(work), http)
    assert "oa-secret-key-123" not in str(info.value)


def test_openalex_403_is_retried_then_throttled(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/doi:10.1000/a").respond_with_json(
        {"error": "Rate limit exceeded"}, status=403
    )
    with pytest.raises(FetchError) as info:
        run(OpenAlexResolver, httpserver, "10.1000/a")
    assert info.value.reason is Reason.THROTTLED
    assert len(httpserver.log) == 2  # attempts=2: retried once


def test_openalex_follows_a_merged_work_redirect(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/W5000000001").respond_with_response(
        Response(status=301, headers={"Location": httpserver.url_for("/works/W1")})
    )
    httpserver.expect_request("/works/W1").respond_with_json(
        {
            "id": "https://openalex.org/W1",
            "best_oa_location": {"pdf_url": "https://x.example/a.pdf"},
        }
    )
    found, _ = run(OpenAlexResolver, httpserver, "W5000000001")
    assert [c.url for c in found] == ["https://x.example/a.pdf"]


# -- Crossref -------------------------------------------------------------------------------------

CROSSREF_MESSAGE = {
    "status": "ok",
    "message-type": "work",
    "message-version": "1.0.0",
    "message": {
        "DOI": "10.1128/msystems.00625-20",
        "link": [
            {
                "URL": "https://journals.asm.org/doi/xml/10.1128/msystems.00625-20",
                "content-type": "application/xml",
                "content-version": "vor",
                "intended-application": "text-mining",
            },
            {
                "URL": "https://journals.asm.org/doi/full/10.1128/msystems.00625-20",
                "content-type": "unspecified",
                "content-version": "vor",
                "intended-application": "similarity-checking",
            },
            {
                "URL": "https://api.elsevier.com/content/article/x",
                "content-type": "text/xml",
                "content-version": "vor",
                "intended-application": "text-mining",
            },
            {
                "URL": "https://journals.asm.org/doi/pdf/10.1128/msystems.00625-20",
                "content-type": "application/pdf",
                "content-version": "am",
                "intended-application": "text-mining",
            },
            {"URL": None},
            "junk",
        ],
        "license": [
            {
                "URL": "https://creativecommons.org/licenses/by/4.0",
                "content-version": "vor",
                "delay-in-days": 0,
            },
            {
                "URL": "https://example.org/embargoed",
                "content-version": "am",
                "delay-in-days": 100000,
            },
        ],
        "issued": {"date-parts": [[2020, 9]]},
    },
}


def test_crossref_pdf_links_first_tdm_api_links_skipped(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/works/10.1128/msystems.00625-20", query_string={"mailto": MAILTO}
    ).respond_with_json(CROSSREF_MESSAGE)
    found, _ = run(CrossrefResolver, httpserver, "10.1128/msystems.00625-20")
    assert [(c.url.rsplit("/", 3)[-3], c.version, c.license) for c in found] == [
        ("pdf", "acceptedVersion", None),  # the am licence is still under embargo
        ("full", "publishedVersion", "https://creativecommons.org/licenses/by/4.0"),
        ("xml", "publishedVersion", "https://creativecommons.org/licenses/by/4.0"),
    ]
    assert all(c.role is Role.ARTIFACT for c in found)


def test_crossref_without_links_or_unknown(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/10.1000/nolinks").respond_with_json(
        {"status": "ok", "message": {"DOI": "10.1000/nolinks", "link": None}}
    )
    httpserver.expect_request("/works/10.1000/unknown").respond_with_data(
        "Resource not found.", status=404, content_type="text/plain"
    )
    assert run(CrossrefResolver, httpserver, "10.1000/nolinks")[0] == []
    assert run(CrossrefResolver, httpserver, "10.1000/unknown")[0] == []


def test_crossref_error_envelope_is_bad_response(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/10.1000/a").respond_with_json(
        {"status": "failed", "message-type": "validation-failure", "message": [{"type": "x"}]}
    )
    with pytest.raises(ResolverError) as info:
        run(CrossrefResolver, httpserver, "10.1000/a")
    assert info.value.reason is Reason.BAD_RESPONSE


# -- Semantic Scholar ----------------------------------------------------------------------------


def test_s2_open_access_pdf_and_external_ids(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2_API_KEY", "s2-secret-key")

    def handler(request: Request) -> Response:
        assert request.headers.get("x-api-key") == "s2-secret-key"
        assert request.args["fields"] == "externalIds,title,isOpenAccess,openAccessPdf"
        return Response(
            '{"paperId": "8e7c", "externalIds": {"DOI": "10.1056/NEJMoa1805689", '
            '"PubMed": 30145929, "PubMedCentral": "6234"}, "isOpenAccess": true, '
            '"openAccessPdf": {"url": "https://www.nejm.org/doi/pdf/x", '
            '"status": "BRONZE", "license": null}}',
            content_type="application/json",
        )

    httpserver.expect_request("/graph/v1/paper/DOI:10.1056/nejmoa1805689").respond_with_handler(
        handler
    )
    found, ids = run(SemanticScholarResolver, httpserver, "10.1056/NEJMoa1805689")
    assert [(c.url, c.host_type, c.license) for c in found] == [
        ("https://www.nejm.org/doi/pdf/x", "publisher", None)
    ]
    assert (ids.pmid, ids.pmcid) == ("30145929", "PMC6234")


@pytest.mark.parametrize("pdf", [None, {"url": ""}, {"url": None, "status": "CLOSED"}, "x"])
def test_s2_null_or_empty_pdf_means_no_candidate(httpserver: HTTPServer, pdf: Any) -> None:
    httpserver.expect_request("/graph/v1/paper/ARXIV:2101.00001").respond_with_json(
        {"paperId": "p", "externalIds": None, "openAccessPdf": pdf}
    )
    assert run(SemanticScholarResolver, httpserver, "arXiv:2101.00001v2")[0] == []


def test_s2_unknown_paper_and_error_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/graph/v1/paper/DOI:10.1000/gone").respond_with_json(
        {"error": "Paper not found"}, status=404
    )
    httpserver.expect_request("/graph/v1/paper/DOI:10.1000/odd").respond_with_json(
        {"error": "Internal error"}
    )
    assert run(SemanticScholarResolver, httpserver, "10.1000/gone")[0] == []
    with pytest.raises(ResolverError):
        run(SemanticScholarResolver, httpserver, "10.1000/odd")
