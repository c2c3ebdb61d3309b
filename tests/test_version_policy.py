"""The version policy: ``prefer`` asks every source of the racing tiers first, then tries their
candidates best version first, whichever source or tier named them.

The recorded answers are real (tests/fixtures/real/api, origins in SOURCES.tsv): PeerJ's OpenAlex
record keeps only its repository location (``submittedVersion``), and the srep16696 Crossref
record, served for the same DOI, names the publisher's PDF (``content-version: vor``); both
point at loopback files.
"""

from __future__ import annotations

import copy
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from loopback import pdf_bytes
from oafetch import Config, Downloader
from oafetch.candidate_policy import (
    VERSIONS,
    normalise_version,
    order_by_version,
    preferred_versions,
    version_rank,
)
from oafetch.errors import ConfigError
from oafetch.tokens import Outcome
from test_openalex_real import PEERJ_WORK
from test_resolvers_real import real

PREFER = ["publishedVersion", "acceptedVersion", "submittedVersion"]


@pytest.mark.parametrize(
    ("spelt", "version"),
    [
        ("publishedVersion", "publishedVersion"),
        ("vor", "publishedVersion"),
        ("Published", "publishedVersion"),
        ("am", "acceptedVersion"),
        ("accepted_version", "acceptedVersion"),
        ("submittedVersion", "submittedVersion"),
        ("preprint", "submittedVersion"),
        ("tdm", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_version(spelt: str | None, version: str | None) -> None:
    assert normalise_version(spelt) == version


def test_recorded_versions_are_all_known() -> None:
    said = [loc.get("version") for loc in PEERJ_WORK["locations"] if loc.get("version")]
    said += [
        link["content-version"] for link in real("crossref", "srep16696.json")["message"]["link"]
    ]
    assert said and all(normalise_version(v) in VERSIONS for v in said)


def test_preferred_versions_rules() -> None:
    assert preferred_versions(["vor", "am"]) == ("publishedVersion", "acceptedVersion")
    assert preferred_versions([]) == ()
    with pytest.raises(ValueError, match="not a version"):
        preferred_versions(["final"])
    with pytest.raises(ValueError, match="listed twice"):
        preferred_versions(["vor", "publishedVersion"])


def test_rank_and_order() -> None:
    prefer = ("acceptedVersion", "publishedVersion")
    assert version_rank("am", prefer) == 0
    assert version_rank("publishedVersion", prefer) == 1
    assert version_rank("submittedVersion", prefer) == version_rank(None, prefer) == 2
    items = [("a", None), ("b", "submittedVersion"), ("c", "vor"), ("d", "am"), ("e", "vor")]
    ordered = order_by_version(items, prefer, lambda item: item[1])
    assert [name for name, _ in ordered] == ["d", "c", "e", "a", "b"]  # ties keep their order
    assert order_by_version(items, (), lambda item: item[1]) == items


def test_config_prefer() -> None:
    assert Config().download.prefer == ()
    assert Config(download={"prefer": ["vor", "submitted"]}).download.prefer == (
        "publishedVersion",
        "submittedVersion",
    )
    with pytest.raises((ConfigError, ValueError), match="prefer"):
        Config(download={"prefer": ["final"]})


# -- end to end ----------------------------------------------------------------------------------

SUBMITTED = pdf_bytes(seed=11)
PUBLISHED = pdf_bytes(seed=12)


def run(
    server: HTTPServer, tmp_path: Path, prefer: list[str], *, published_status: int = 200
) -> tuple[Any, list[str]]:
    """OpenAlex (first tier) knows the submitted version, Crossref (second tier) the
    published one; returns the result and the files asked for, in order."""
    asked: list[str] = []
    base = server.url_for("").rstrip("/")
    record = copy.deepcopy(PEERJ_WORK)
    repository = copy.deepcopy(record["locations"][4])
    repository["pdf_url"] = f"{base}/files/submitted.pdf"
    record["best_oa_location"] = repository
    record["locations"] = [repository]
    record["open_access"]["oa_url"] = None
    crossref = real("crossref", "srep16696.json")
    crossref["message"]["DOI"] = "10.7717/peerj.4375"
    crossref["message"]["link"] = [
        {**link, "URL": f"{base}/files/published.pdf"}
        for link in crossref["message"]["link"]
        if link["content-type"] == "application/pdf"
    ]
    files = {"/files/submitted.pdf": SUBMITTED, "/files/published.pdf": PUBLISHED}

    def answer(request: Request) -> Response:
        asked.append(request.path)
        if request.path == "/openalex/works/doi:10.7717/peerj.4375":
            return Response(json.dumps(record), content_type="application/json")
        if request.path == "/crossref/works/10.7717/peerj.4375":
            return Response(json.dumps(crossref), content_type="application/json")
        if request.path == "/files/published.pdf" and published_status != 200:
            return Response("gone", status=published_status)
        if request.path in files:
            return Response(files[request.path], content_type="application/pdf")
        return Response("not found", status=404)

    server.expect_request(re.compile(".*")).respond_with_handler(answer)
    config = Config(
        mailto="tester@oafetch.test",
        out_dir=tmp_path / "out",
        retry={"attempts": 1},
        politeness={"enabled": False},
        robots={"enabled": False},
        cache={"enabled": False},
        download={"fsync": False, "identity": "off", "prefer": prefer},
        resolvers={
            "openalex": {"base_url": f"{base}/openalex"},
            "crossref": {"base_url": f"{base}/crossref"},
        },
        fallback={
            "tiers": [
                {"name": "direct", "sources": ["openalex"]},
                {"name": "publisher", "sources": ["crossref"]},
            ]
        },
    )
    with Downloader(config, resume=False) as dl:
        [result] = list(dl.run(["10.7717/peerj.4375"]))
    return result, [p for p in asked if not p.startswith("/openalex/")]


def manifest_row(tmp_path: Path) -> dict[str, Any]:
    [line] = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    row: dict[str, Any] = json.loads(line)
    return row


def test_without_prefer_the_first_tier_wins(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, asked = run(httpserver, tmp_path, [])
    assert result.outcome is Outcome.SUCCESS
    assert asked == ["/files/submitted.pdf"]  # Crossref is never asked
    assert manifest_row(tmp_path)["version"] == "submittedVersion"


def test_prefer_stores_the_published_version_of_a_later_tier(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    result, asked = run(httpserver, tmp_path, PREFER)
    assert result.outcome is Outcome.SUCCESS
    assert asked == ["/crossref/works/10.7717/peerj.4375", "/files/published.pdf"]
    row = manifest_row(tmp_path)
    assert (row["version"], row["license"], row["host_type"]) == (
        "publishedVersion",
        "https://creativecommons.org/licenses/by/4.0",
        "publisher",
    )
    assert (tmp_path / "out" / row["path"]).read_bytes() == PUBLISHED
    with sqlite3.connect(tmp_path / "out" / "telemetry.sqlite") as conn:
        attempts = conn.execute(
            "SELECT tier, source, outcome FROM fallback_attempts ORDER BY rowid"
        ).fetchall()
    # both sources listed their candidates, then the published file won as Crossref's attempt
    assert attempts[:2] == [("direct", "openalex", "skipped"), ("publisher", "crossref", "skipped")]
    assert attempts[2:] == [("publisher", "crossref", "success")]


def test_prefer_falls_back_to_the_next_version(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, asked = run(httpserver, tmp_path, PREFER, published_status=404)
    assert result.outcome is Outcome.SUCCESS
    assert asked == [
        "/crossref/works/10.7717/peerj.4375",
        "/files/published.pdf",
        "/files/submitted.pdf",
    ]
    assert manifest_row(tmp_path)["version"] == "submittedVersion"


def test_prefer_submitted_first(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, asked = run(httpserver, tmp_path, ["submittedVersion", "publishedVersion"])
    assert result.outcome is Outcome.SUCCESS
    assert asked == ["/crossref/works/10.7717/peerj.4375", "/files/submitted.pdf"]
    assert manifest_row(tmp_path)["version"] == "submittedVersion"
