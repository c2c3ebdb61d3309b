"""TDM reservations (TDMRep): the three techniques parsed from the report's own examples
(tests/fixtures/real/tdmrep, origins in SOURCES.tsv), the per-origin ``tdmrep.json`` cache, and
``tdm = true`` refusing reserved files with reason ``tdm-reserved`` and the policy URL in the
manifest, while ``tdm = false`` (the default) stores them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from loopback import pdf_bytes
from oafetch.config import RobotsConfig
from oafetch.http.tdmrep import (
    Declaration,
    TdmRepCache,
    from_headers,
    from_html,
    match,
    parse_rules,
    reservation_value,
)
from oafetch.tokens import Outcome, Reason
from peerj_chain import base_url, manifest_row, run_peerj
from test_openalex_real import PEERJ_WORK

REAL = Path(__file__).parent / "fixtures" / "real" / "tdmrep"
POLICY = "https://provider.com/policies/policy.json"


@pytest.mark.parametrize(
    ("value", "reserved"),
    [("1", True), (" 0 ", False), (1, True), (0, False), ("yes", None), (True, None), (None, None)],
)
def test_reservation_values(value: object, reserved: bool | None) -> None:
    assert reservation_value(value) is reserved


def test_headers() -> None:
    assert from_headers({"tdm-reservation": "1", "tdm-policy": POLICY}) == Declaration(True, POLICY)
    assert from_headers({"tdm-reservation": "0", "tdm-policy": POLICY}) == Declaration(False)
    assert from_headers({"tdm-reservation": "2"}) == Declaration()
    assert from_headers({}) == Declaration()


def test_the_reports_html_example() -> None:
    page = (REAL / "spec-html-meta.html").read_text()
    assert from_html(page) == Declaration(True, POLICY)
    assert from_html(page.replace('content="1"', 'content="0"')) == Declaration(False)
    assert from_html("<html><head><title>x</title></head></html>") == Declaration()


def test_the_reports_three_groups() -> None:
    rules = parse_rules((REAL / "spec-three-groups.json").read_text())
    site = "https://provider.com"
    assert match(rules, f"{site}/directory-a/paper.pdf") == Declaration(True)
    assert match(rules, f"{site}/directory-b/html/a.html") == Declaration(True, POLICY)
    assert match(rules, f"{site}/directory-b/images/x/y.jpg") == Declaration(False)
    assert match(rules, f"{site}/directory-b/images/y.png") == Declaration()
    assert match(rules, f"{site}/about") == Declaration()


def test_patterns_first_match_and_malformed_rules() -> None:
    text = json.dumps(
        [
            {"location": "/open/*.pdf$", "tdm-reservation": 0},
            {"location": "/", "tdm-reservation": 1, "tdm-policy": POLICY},
            {"location": "/never", "tdm-reservation": "maybe"},
        ]
    )
    rules = parse_rules(text)
    assert len(rules) == 2  # a rule without a valid reservation is left out
    assert match(rules, "https://h.test/open/a.pdf") == Declaration(False)
    assert match(rules, "https://h.test/open/a.pdf.html") == Declaration(True, POLICY)
    assert match(rules, "https://h.test/open/%61.pdf") == Declaration(False)  # decoded
    assert parse_rules("{not json") == parse_rules('{"location": "/"}') == []


def test_later_techniques_supersede_only_when_they_say_something() -> None:
    site = Declaration(True, POLICY)
    assert site.then(Declaration()) == site
    assert site.then(Declaration(False)) == Declaration(False)


def test_the_cache_asks_each_origin_once() -> None:
    asked: list[str] = []
    answers = {
        "https://a.test/.well-known/tdmrep.json": (
            200,
            '[{"location": "/", "tdm-reservation": 1}]',
        ),
        "https://b.test/.well-known/tdmrep.json": (503, ""),
        "https://c.test/.well-known/tdmrep.json": (404, "not found"),
    }

    def fetch(url: str) -> tuple[int | None, str]:
        asked.append(url)
        return answers[url]

    cache = TdmRepCache(RobotsConfig(), fetch)
    for path in ("/x.pdf", "/y.pdf", "/z"):
        assert cache.declaration(f"https://a.test{path}").reserved is True
        assert cache.declaration(f"https://b.test{path}").reserved is None
        assert cache.declaration(f"https://c.test{path}").reserved is None
    assert sorted(asked) == sorted(answers)  # once per origin


# -- end to end ----------------------------------------------------------------------------------

PDF = pdf_bytes(seed=21)


def run(
    server: HTTPServer,
    tmp_path: Path,
    *,
    tdm: bool,
    file_headers: dict[str, str] | None = None,
    well_known: Any = None,
    landing_meta: bool = False,
) -> tuple[Any, dict[str, Any], list[str]]:
    """PeerJ's recorded OpenAlex record with one location on loopback: a PDF URL, or (with
    ``landing_meta``) a landing page that links to the PDF and carries the report's meta."""
    base = base_url(server)
    record = copy.deepcopy(PEERJ_WORK)
    location = copy.deepcopy(record["locations"][0])
    location.update(pdf_url=None if landing_meta else f"{base}/files/paper.pdf")
    location["landing_page_url"] = f"{base}/article/peerj.4375"
    record["best_oa_location"] = location
    record["locations"] = [location]
    record["open_access"]["oa_url"] = None
    meta = (REAL / "spec-html-meta.html").read_text()
    page = meta.replace(
        "<title>", '<meta name="citation_pdf_url" content="/files/paper.pdf"><title>'
    )

    files = {
        "/article/peerj.4375": (page, "text/html", {}),
        "/files/paper.pdf": (PDF, "application/pdf", file_headers or {}),
    }
    if well_known is not None:
        files["/.well-known/tdmrep.json"] = (json.dumps(well_known), "application/json", {})
    result, asked = run_peerj(server, tmp_path, record, files, tdm=tdm)
    return result, manifest_row(tmp_path), [p for p in asked if not p.startswith("/openalex/")]


def stored(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "out").rglob("*.pdf"))


RESERVED = {"tdm-reservation": "1", "tdm-policy": POLICY}


def test_a_reserving_header_refuses_the_file(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, row, asked = run(httpserver, tmp_path, tdm=True, file_headers=RESERVED)
    assert (result.outcome, result.reason) == (Outcome.SKIP, Reason.TDM_RESERVED)
    assert (row["reason"], row["tdm_policy"]) == ("tdm-reserved", POLICY)
    # the location's landing page is tried next: its meta reserves the work too
    assert asked == ["/.well-known/tdmrep.json", "/files/paper.pdf", "/article/peerj.4375"]
    assert stored(tmp_path) == []


def test_without_tdm_the_reserved_file_is_stored(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, row, asked = run(httpserver, tmp_path, tdm=False, file_headers=RESERVED)
    assert result.outcome is Outcome.SUCCESS
    assert row["tdm_policy"] is None
    assert asked == ["/files/paper.pdf"]  # no tdmrep.json is asked for
    assert len(stored(tmp_path)) == 1


def test_the_well_known_file_refuses_the_file(httpserver: HTTPServer, tmp_path: Path) -> None:
    rules = [{"location": "/files/", "tdm-reservation": 1, "tdm-policy": POLICY}]
    result, row, _ = run(httpserver, tmp_path, tdm=True, well_known=rules)
    assert (result.outcome, result.reason) == (Outcome.SKIP, Reason.TDM_RESERVED)
    assert row["tdm_policy"] == POLICY
    assert stored(tmp_path) == []


def test_a_header_saying_0_overrides_the_well_known_file(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    rules = [{"location": "/", "tdm-reservation": 1}]
    result, _, _ = run(
        httpserver, tmp_path, tdm=True, well_known=rules, file_headers={"tdm-reservation": "0"}
    )
    assert result.outcome is Outcome.SUCCESS
    assert len(stored(tmp_path)) == 1


def test_a_landing_pages_meta_refuses_its_files(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, row, asked = run(httpserver, tmp_path, tdm=True, landing_meta=True)
    assert (result.outcome, result.reason) == (Outcome.SKIP, Reason.TDM_RESERVED)
    assert row["tdm_policy"] == POLICY
    assert "/files/paper.pdf" not in asked  # the page's PDF link is not followed
    assert stored(tmp_path) == []


def test_without_tdm_the_landing_pages_pdf_is_stored(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    result, _, asked = run(httpserver, tmp_path, tdm=False, landing_meta=True)
    assert result.outcome is Outcome.SUCCESS
    assert asked == ["/article/peerj.4375", "/files/paper.pdf"]
