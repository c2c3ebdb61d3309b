"""Retracted works: what OpenAlex and Crossref say of them, carried on the candidates and into
the manifest, and ``skip_retracted`` refusing them with reason ``retracted``.

The recorded answers are real (tests/fixtures/real/api, origins in SOURCES.tsv). No recorded
answer for a retracted work was found, so the retraction is set on a real record: OpenAlex's
``is_retracted``, and for Crossref the two ``updated-by`` entries the live API lists for the
Wakefield paper (10.1016/s0140-6736(97)11096-0: a Retraction Watch ``correction`` in 2004 and
its ``retraction`` in 2010), with the field names and values Crossref sends.
"""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from loopback import pdf_bytes
from oafetch import Config
from oafetch.resolvers.crossref import CrossrefResolver, retracted_by_update
from oafetch.tokens import Outcome, Reason
from peerj_chain import base_url, manifest_row, run_peerj
from test_openalex_real import PEERJ_WORK
from test_openalex_real import ask as ask_openalex
from test_resolvers_direct import make
from test_resolvers_real import ask, crossref, real

CORRECTION = {
    "DOI": "10.1016/s0140-6736(04)15715-2",
    "type": "correction",
    "label": "Correction",
    "source": "retraction-watch",
    "updated": {"date-time": "2004-03-06T00:00:00Z"},
    "record-id": "17269",
}
RETRACTION = {
    "DOI": "10.1016/s0140-6736(10)60175-4",
    "type": "retraction",
    "label": "Retraction",
    "source": "retraction-watch",
    "updated": {"date-time": "2010-02-06T00:00:00Z"},
    "record-id": "4036",
}


def with_updates(updates: list[dict[str, Any]]) -> dict[str, Any]:
    """The recorded srep16696 answer with ``updated-by`` set to ``updates``."""
    answer: dict[str, Any] = real("crossref", "srep16696.json")
    answer["message"]["updated-by"] = updates
    return answer


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        ([CORRECTION, RETRACTION], True),  # the correction listed first does not hide it
        ([RETRACTION], True),
        ([{**RETRACTION, "type": "withdrawal"}], True),
        ([{**RETRACTION, "type": "removal"}], True),
        ([CORRECTION], None),
        ([{**RETRACTION, "type": "expression_of_concern"}], None),
        ([], None),
    ],
)
def test_crossref_updated_by_types(updates: list[dict[str, Any]], expected: bool | None) -> None:
    assert retracted_by_update(with_updates(updates)["message"]) is expected


def test_crossref_record_without_updates_says_nothing() -> None:
    assert retracted_by_update(real("crossref", "srep16696.json")["message"]) is None


def test_crossref_update_to_is_a_notice_not_a_retracted_work() -> None:
    """``update-to`` is the notice's own record pointing at the work it retracts."""
    message = real("crossref", "srep16696.json")["message"]
    message["update-to"] = [{**RETRACTION, "DOI": "10.1016/s0140-6736(97)11096-0"}]
    assert retracted_by_update(message) is None


def test_crossref_retraction_is_carried_on_every_candidate(httpserver: HTTPServer) -> None:
    doi = "10.1038/srep16696"
    httpserver.expect_request(f"/works/{doi}").respond_with_json(
        with_updates([CORRECTION, RETRACTION])
    )
    resolver, http = make(CrossrefResolver, httpserver)
    found = ask(resolver, http, doi)[0]
    assert found and {c.retracted for c in found} == {True}


def test_crossref_candidates_without_updates_are_unmarked(httpserver: HTTPServer) -> None:
    found = crossref(httpserver, "10.1038/srep16696", "srep16696.json")
    assert found and {c.retracted for c in found} == {None}


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (None, None)])
def test_openalex_is_retracted_is_carried_on_every_candidate(
    httpserver: HTTPServer, value: bool | None, expected: bool | None
) -> None:
    record = copy.deepcopy(PEERJ_WORK)
    if value is not None:
        record["is_retracted"] = value
    httpserver.expect_request("/works/doi:10.7717/peerj.4375").respond_with_json(record)
    found, _ = ask_openalex(httpserver, "10.7717/peerj.4375")
    assert found and {c.retracted for c in found} == {expected}


def test_openalex_is_asked_for_is_retracted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/works/doi:10.7717/peerj.4375").respond_with_json(PEERJ_WORK)
    ask_openalex(httpserver, "10.7717/peerj.4375")
    [(request, _)] = httpserver.log
    assert "is_retracted" in request.args["select"].split(",")


# -- end to end ----------------------------------------------------------------------------------

PDF = pdf_bytes()


def run(server: HTTPServer, tmp_path: Path, skip_retracted: bool) -> tuple[Any, list[str]]:
    """One work through OpenAlex (retracted, its PDF on loopback) then Crossref."""
    record = copy.deepcopy(PEERJ_WORK)
    record["is_retracted"] = True
    record["best_oa_location"]["pdf_url"] = f"{base_url(server)}/files/peerj-4375.pdf"
    files = {"/files/peerj-4375.pdf": (PDF, "application/pdf", {})}
    return run_peerj(server, tmp_path, record, files, telemetry=True, skip_retracted=skip_retracted)


def test_a_retracted_work_is_stored_and_flagged_by_default(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    result, asked = run(httpserver, tmp_path, skip_retracted=False)
    assert result.outcome is Outcome.SUCCESS
    assert asked.count("/files/peerj-4375.pdf") == 1
    row = manifest_row(tmp_path)
    assert row["retracted"] is True
    assert (tmp_path / "out" / row["path"]).read_bytes() == PDF


def test_skip_retracted_refuses_the_work_before_any_file_is_fetched(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    result, asked = run(httpserver, tmp_path, skip_retracted=True)
    with sqlite3.connect(tmp_path / "out" / "telemetry.sqlite") as conn:
        stored = conn.execute("SELECT outcome, reason, retracted FROM downloads").fetchall()
    assert stored == [("skip", "retracted", 1)]
    assert (result.outcome, result.reason) == (Outcome.SKIP, Reason.RETRACTED)
    assert "/files/peerj-4375.pdf" not in asked
    row = manifest_row(tmp_path)
    assert (row["outcome"], row["reason"], row["retracted"]) == ("skip", "retracted", True)
    assert not list((tmp_path / "out").rglob("*.pdf"))


def test_skip_retracted_is_off_by_default() -> None:
    assert Config().download.skip_retracted is False
