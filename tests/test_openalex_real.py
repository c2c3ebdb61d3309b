"""OpenAlex against recorded real answers (tests/fixtures/real/api/openalex, origins in its
SOURCES.tsv): arXiv DOIs asked by DOI, arXiv ids asked by their arXiv DOI, and the fields the
2025-26 API added (``license_id``, ``is_accepted``/``is_published``, ``has_content``)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from oafetch import Config, Downloader
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Candidate, WorkIds
from oafetch.resolvers.openalex import OpenAlexResolver, location_version
from oafetch.tokens import Role
from oafetch.works import IdKind, parse_work

FIXTURES = Path(__file__).parent / "fixtures" / "real" / "api" / "openalex"
MAILTO = "tester@oafetch.test"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


ARXIV_DOI_WORK = recorded("W4365597205-arxiv-doi.json")  # doi 10.48550/arxiv.2304.05376
PEERJ_WORK = recorded("W2741809807.json")
CONTENT_WORK = recorded("W3038568908-content-documented.json")


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPENALEX_API_KEY", raising=False)
    yield


def ask(server: HTTPServer, ident: str) -> tuple[list[Candidate], WorkIds]:
    config = Config(
        mailto=MAILTO,
        retry={"attempts": 1},
        politeness={"enabled": False},
        telemetry={"enabled": False},
        resolvers={"openalex": {"base_url": server.url_for("").rstrip("/")}},
    )
    resolver = OpenAlexResolver(config.resolver("openalex"), config)
    work = parse_work(ident)
    ids = WorkIds.of(work)
    with HttpClient(config) as http:
        assert resolver.applies_to(work, ids), f"openalex does not apply to {ident}"
        return resolver.candidates(work, ids, http), ids


def test_every_fixture_has_its_origin_recorded() -> None:
    rows = (FIXTURES / "SOURCES.tsv").read_text().splitlines()
    named = {row.split("\t")[0] for row in rows[1:]}
    assert named == {p.name for p in FIXTURES.glob("*.json")}


def test_an_arxiv_doi_stays_a_doi_work_that_knows_its_arxiv_id() -> None:
    work = parse_work("https://doi.org/10.48550/arXiv.2304.05376")
    assert (work.kind, work.value, work.arxiv) == (
        IdKind.DOI,
        "10.48550/arxiv.2304.05376",
        "2304.05376",
    )
    ids = WorkIds.of(work)
    assert (ids.doi, ids.arxiv) == ("10.48550/arxiv.2304.05376", "2304.05376")


def test_an_arxiv_doi_is_asked_of_openalex_by_that_doi(httpserver: HTTPServer) -> None:
    """The recorded W4365597205: its arXiv PDF and page come back, the arXiv id is known."""
    httpserver.expect_request("/works/doi:10.48550/arxiv.2304.05376").respond_with_json(
        ARXIV_DOI_WORK
    )
    found, ids = ask(httpserver, "10.48550/arXiv.2304.05376")
    assert [(c.url, c.role, c.version, c.host_type) for c in found] == [
        ("http://arxiv.org/pdf/2304.05376", Role.ARTIFACT, "submittedVersion", "repository"),
        ("https://arxiv.org/abs/2304.05376", Role.LANDING, "submittedVersion", "repository"),
        ("http://arxiv.org/abs/2304.05376", Role.LANDING, "submittedVersion", "repository"),
    ]
    assert found[1].license == "other-oa"
    assert (ids.openalex, ids.arxiv) == ("W4365597205", "2304.05376")


@pytest.mark.parametrize(
    "ident", ["arXiv:2304.05376v2", "https://arxiv.org/abs/2304.05376", "2304.05376"]
)
def test_an_arxiv_id_is_asked_of_openalex_by_its_arxiv_doi(
    httpserver: HTTPServer, ident: str
) -> None:
    """OpenAlex has no arXiv key; the version is dropped (the DOI names the paper)."""
    httpserver.expect_request("/works/doi:10.48550/arxiv.2304.05376").respond_with_json(
        ARXIV_DOI_WORK
    )
    found, ids = ask(httpserver, ident)
    assert "http://arxiv.org/pdf/2304.05376" in [c.url for c in found]
    assert ids.doi == "10.48550/arxiv.2304.05376"


def test_an_arxiv_doi_asks_every_doi_source_and_arxiv(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Through the whole chain: Unpaywall, OpenAlex, Crossref and S2 by the DOI, arXiv by id."""
    asked: list[str] = []

    def answer(request: Request) -> Response:
        asked.append(request.full_path)
        if request.path == "/openalex/works/doi:10.48550/arxiv.2304.05376":
            return Response(json.dumps(ARXIV_DOI_WORK), content_type="application/json")
        return Response("not found", status=404)

    httpserver.expect_request(re.compile(".*")).respond_with_handler(answer)
    base = httpserver.url_for("").rstrip("/")
    names = ("unpaywall", "openalex", "crossref", "semantic_scholar", "arxiv")
    config = Config(
        mailto=MAILTO,
        out_dir=tmp_path / "out",
        retry={"attempts": 1},
        politeness={"enabled": False},
        robots={"enabled": False},
        cache={"enabled": False},
        telemetry={"enabled": False},
        download={"fsync": False},
        resolvers={n: {"base_url": f"{base}/{n}"} for n in names}
        | {"arxiv": {"base_url": f"{base}/arxiv", "files_url": f"{base}/arxiv-files"}},
        fallback={
            "tiers": [
                {
                    "name": "direct",
                    "sources": ["unpaywall", "openalex", "crossref", "semantic_scholar"],
                },
                {"name": "repositories", "sources": ["arxiv"]},
            ]
        },
    )
    with Downloader(config, resume=False) as dl:
        [result] = list(dl.run(["10.48550/arXiv.2304.05376"], list_only=True))
    assert result.work_id == "doi:10.48550/arxiv.2304.05376"
    paths = {p.split("?")[0] for p in asked}
    assert paths >= {
        "/unpaywall/v2/10.48550/arxiv.2304.05376",
        "/openalex/works/doi:10.48550/arxiv.2304.05376",
        "/crossref/works/10.48550/arxiv.2304.05376",
        "/semantic_scholar/graph/v1/paper/DOI:10.48550/arxiv.2304.05376",
        "/arxiv/api/query",
    }
    assert any("id_list=2304.05376" in p for p in asked)
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text()
    assert "http://arxiv.org/pdf/2304.05376" in manifest  # OpenAlex's file is listed


def test_a_real_record_fills_licences_and_learns_it_has_no_cached_copy(
    httpserver: HTTPServer,
) -> None:
    """W2741809807 as the 2026 API sends it: ``has_content`` all false, ``content_urls`` null."""
    httpserver.expect_request("/works/doi:10.7717/peerj.4375").respond_with_json(PEERJ_WORK)
    found, ids = ask(httpserver, "10.7717/peerj.4375")
    by_url = {c.url: c for c in found}
    assert by_url["https://doi.org/10.7717/peerj.4375"].license == "cc-by"
    assert by_url["https://doaj.org/article/13b0006802e745a6973c19b2ecb9b97a"].version == (
        "submittedVersion"
    )
    assert ids.openalex_content == frozenset()
    assert (ids.pmid, ids.pmcid) == ("29456894", "PMC5815332")


def test_license_id_stands_in_for_a_missing_licence(httpserver: HTTPServer) -> None:
    record = copy.deepcopy(PEERJ_WORK)
    record["best_oa_location"]["license"] = None  # license_id stays: .../licenses/cc-by
    httpserver.expect_request("/works/doi:10.7717/peerj.4375").respond_with_json(record)
    found, _ = ask(httpserver, "10.7717/peerj.4375")
    assert found[0].url == "https://doi.org/10.7717/peerj.4375" and found[0].license == "cc-by"


@pytest.mark.parametrize(
    ("flags", "version"),
    [
        ({"is_published": True, "is_accepted": True}, "publishedVersion"),
        ({"is_published": False, "is_accepted": True}, "acceptedVersion"),
        ({"is_published": False, "is_accepted": False}, None),
        ({}, None),
    ],
)
def test_is_published_and_is_accepted_give_the_version_when_it_is_null(
    flags: dict[str, bool], version: str | None
) -> None:
    location = {
        k: v
        for k, v in PEERJ_WORK["locations"][0].items()
        if k not in ("is_published", "is_accepted")
    }
    location.update(flags, version=None)
    assert location_version(location) == version
    assert location_version(PEERJ_WORK["locations"][0]) == "publishedVersion"


def test_has_content_and_content_urls_are_learnt(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/W3038568908").respond_with_json(CONTENT_WORK)
    found, ids = ask(httpserver, "W3038568908")
    assert found == [] and ids.openalex_content == frozenset({"pdf", "grobid_xml"})
    # the arXiv-DOI record of 2025 has neither field: unknown, not "none"
    httpserver.expect_request("/works/doi:10.48550/arxiv.2304.05376").respond_with_json(
        ARXIV_DOI_WORK
    )
    assert ask(httpserver, "10.48550/arxiv.2304.05376")[1].openalex_content is None


def test_the_select_asks_for_the_content_fields(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/doi:10.7717/peerj.4375").respond_with_json(PEERJ_WORK)
    ask(httpserver, "10.7717/peerj.4375")
    request = httpserver.log[0][0]
    assert set(request.args["select"].split(",")) >= {"has_content", "content_urls", "locations"}
