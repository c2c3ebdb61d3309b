"""The Wayback resolver: availability API first, CDX when it has nothing, raw ``id_`` URLs."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from oafetch.config import Config
from oafetch.errors import ResolverError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, WorkIds
from oafetch.resolvers.wayback import WaybackResolver
from oafetch.tokens import Reason, Role
from oafetch.works import parse_work

PDF = "https://publisher.example/content/1.full.pdf"


def make(server: HTTPServer) -> tuple[WaybackResolver, HttpClient]:
    base = server.url_for("").rstrip("/")
    config = Config(
        mailto="tester@oafetch.test",
        retry={"attempts": 2, "backoff_initial_s": 0, "jitter_s": 0},
        politeness={"enabled": False},
        telemetry={"enabled": False},
        resolvers={
            "wayback": {"base_url": base, "cdx_url": base, "web_url": "https://web.archive.example"}
        },
    )
    return WaybackResolver(config.resolver("wayback"), config), HttpClient(config)


def run(server: HTTPServer, ident: str, urls: list[str]) -> list[Candidate]:
    resolver, http = make(server)
    work = parse_work(ident)
    ids = WorkIds.of(work)
    ids.note_urls(urls)
    with http:
        assert resolver.applies_to(work, ids)
        return resolver.candidates(work, ids, http)


def available(snapshot: dict[str, Any] | None) -> dict[str, Any]:
    return {"archived_snapshots": {"closest": snapshot} if snapshot else {}}


def test_pdf_capture_from_availability_api_stops_the_search(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/wayback/available", query_string={"url": PDF}).respond_with_json(
        available(
            {
                "available": True,
                "status": "200",
                "timestamp": "20130919044612",
                "url": f"http://web.archive.org/web/20130919044612/{PDF}",
            }
        )
    )
    found = run(httpserver, "10.1000/xyz", ["https://publisher.example/content/1", PDF])
    assert [(c.url, c.role) for c in found] == [
        (f"https://web.archive.example/web/20130919044612id_/{PDF}", Role.ARTIFACT)
    ]
    assert len(httpserver.log) == 1  # the PDF-looking URL is asked first, and suffices


def test_cdx_when_availability_has_nothing(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/wayback/available").respond_with_json(available(None))

    def cdx(request: Request) -> Response:
        assert request.args.getlist("filter") == ["statuscode:200", "mimetype:application/pdf"]
        assert request.args["output"] == "json" and request.args["limit"] == "-1"
        if request.args["url"] != PDF:
            return Response("[]", content_type="application/json")
        rows = [
            ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"],
            ["com,example)/1.pdf", "20200101000000", PDF, "application/pdf", "200", "X", "9"],
        ]
        return Response(__import__("json").dumps(rows), content_type="application/json")

    httpserver.expect_request("/cdx/search/cdx").respond_with_handler(cdx)
    found = run(httpserver, "10.1000/xyz", [PDF])
    assert [c.url for c in found] == [f"https://web.archive.example/web/20200101000000id_/{PDF}"]


def test_doi_url_capture_is_a_landing_page_and_redirects_count(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/wayback/available", query_string={"url": "https://doi.org/10.1000/xyz"}
    ).respond_with_json(
        available(
            {
                "available": True,
                "status": "302",
                "timestamp": "20190101000000",
                "url": "http://web.archive.org/web/20190101000000/https://doi.org/10.1000/xyz",
            }
        )
    )
    found = run(httpserver, "10.1000/xyz", [])
    assert [(c.url, c.role) for c in found] == [
        (
            "https://web.archive.example/web/20190101000000id_/https://doi.org/10.1000/xyz",
            Role.LANDING,
        )
    ]
    assert len(httpserver.log) == 1  # CDX is never asked about a doi.org URL


def test_nothing_archived_means_no_candidates(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/wayback/available").respond_with_json(available(None))
    httpserver.expect_request("/cdx/search/cdx").respond_with_data("", content_type="text/plain")
    with pytest.raises(ResolverError):  # an empty CDX body is not JSON
        run(httpserver, "10.1000/xyz", [PDF])
    httpserver.clear()
    httpserver.expect_request("/wayback/available").respond_with_json(available(None))
    httpserver.expect_request("/cdx/search/cdx").respond_with_json([])
    assert run(httpserver, "https://site.example/paper.pdf", []) == []


@pytest.mark.parametrize(
    "snapshot",
    [
        {"available": True, "status": "404", "timestamp": "20200101000000", "url": "x"},
        {"available": False},
        {"available": True, "status": 200, "timestamp": None, "url": None},
    ],
)
def test_unusable_snapshots_are_skipped(httpserver: HTTPServer, snapshot: dict[str, Any]) -> None:
    httpserver.expect_request("/wayback/available").respond_with_json(available(snapshot))
    assert run(httpserver, "10.1000/xyz", []) == []


def test_wrong_shape_is_bad_response(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/wayback/available").respond_with_json({"unexpected": 1})
    with pytest.raises(ResolverError) as info:
        run(httpserver, "10.1000/xyz", [])
    assert info.value.reason is Reason.BAD_RESPONSE


def test_archive_urls_are_not_looked_up_again(httpserver: HTTPServer) -> None:
    resolver, http = make(httpserver)
    http.close()
    work = parse_work("https://publisher.example/x")
    ids = WorkIds.of(work)
    ids.note_urls(
        [
            "https://web.archive.org/web/2020/https://a.example/",
            "ftp://x.example/a",
            "https://doi.org/10.1000/xyz",
            "https://a.example/1",
            "https://a.example/2.pdf",
            "https://a.example/3",
            "https://a.example/4",
        ]
    )
    assert resolver.lookups(work, ids) == [
        "https://publisher.example/x",
        "https://a.example/2.pdf",
        "https://a.example/1",
        "https://a.example/3",
    ]
