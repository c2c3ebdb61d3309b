"""Input from an OpenAlex filter: cursor paging to the end, DOIs or W ids, keys kept secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from oafetch.config import Config
from oafetch.errors import FetchError, ResolverError
from oafetch.resolvers.openalex_query import openalex_works
from oafetch.tokens import Reason
from oafetch.works import IdKind


def config(server: HTTPServer, **settings: Any) -> Config:
    return Config(
        mailto="tester@oafetch.test",
        retry={"attempts": 2, "backoff_initial_s": 0, "jitter_s": 0},
        politeness={"enabled": False},
        telemetry={"enabled": False},
        resolvers={"openalex": {"base_url": server.url_for("").rstrip("/"), **settings}},
    )


def paging_handler(total: int, per_page_seen: list[str]) -> Any:
    """Serve ``total`` works over cursor pages of 3 (every third work has no DOI)."""

    def handler(request: Request) -> Response:
        per_page_seen.append(request.args["per-page"])
        assert request.args["filter"] == "is_oa:true"
        assert request.args["select"] == "id,doi"
        cursor = request.args["cursor"]
        start = 0 if cursor == "*" else int(cursor.removeprefix("c"))
        results = [
            {
                "id": f"https://openalex.org/W{n}",
                "doi": None if n % 3 == 0 else f"https://doi.org/10.1000/W{n}",
            }
            for n in range(start + 1, min(start + 3, total) + 1)
        ]
        following = f"c{start + 3}" if start + 3 < total else None
        body = {"meta": {"count": total, "next_cursor": following}, "results": results}
        return Response(json.dumps(body), content_type="application/json")

    return handler


def test_pages_until_next_cursor_is_null(httpserver: HTTPServer) -> None:
    seen: list[str] = []
    httpserver.expect_request("/works").respond_with_handler(paging_handler(8, seen))
    lines = list(openalex_works(config(httpserver), "is_oa:true"))
    assert [line.line for line in lines] == list(range(1, 9))
    assert [(w.kind, w.value) for w in (line.work for line in lines) if w][:3] == [
        (IdKind.DOI, "10.1000/w1"),
        (IdKind.DOI, "10.1000/w2"),
        (IdKind.OPENALEX, "W3"),
    ]
    assert len(seen) == 3 and set(seen) == {"200"}


def test_an_empty_page_ends_the_stream(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works").respond_with_json(
        {"meta": {"count": 0, "next_cursor": "more"}, "results": []}
    )
    assert list(openalex_works(config(httpserver), "is_oa:true")) == []
    assert len(httpserver.log) == 1


def test_pages_are_fetched_lazily(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works").respond_with_handler(paging_handler(30, []))
    stream = openalex_works(config(httpserver), "is_oa:true")
    first = next(stream)
    assert first.work is not None and len(httpserver.log) == 1
    stream.close()


def test_api_key_is_sent_and_never_shown(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENALEX_API_KEY", "oa-list-key-999")
    httpserver.expect_request(
        "/works",
        query_string={
            "filter": "is_oa:true",
            "per-page": "200",
            "cursor": "*",
            "select": "id,doi",
            "api_key": "oa-list-key-999",
        },
    ).respond_with_data("<html>maintenance</html>")
    with pytest.raises(ResolverError) as info:
        list(openalex_works(config(httpserver), "is_oa:true"))
    assert info.value.reason is Reason.BAD_RESPONSE
    assert "oa-list-key-999" not in str(info.value)


def test_wrong_shape_and_throttling(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works").respond_with_json({"error": "Invalid query parameters"})
    with pytest.raises(ResolverError):
        list(openalex_works(config(httpserver), "bogus:1"))
    httpserver.clear()
    httpserver.expect_request("/works").respond_with_json({"error": "slow down"}, status=403)
    with pytest.raises(FetchError) as info:
        list(openalex_works(config(httpserver, api_key="k-secret-123"), "is_oa:true"))
    assert info.value.reason is Reason.THROTTLED and "k-secret-123" not in str(info.value)
    assert len(httpserver.log) == 2


def test_results_without_ids_are_reported_per_line(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works").respond_with_json(
        {"meta": {"next_cursor": None}, "results": [{"id": None, "doi": "not a doi"}, 7]}
    )
    lines = list(openalex_works(config(httpserver), "is_oa:true"))
    assert [(line.work, bool(line.error)) for line in lines] == [(None, True), (None, True)]
