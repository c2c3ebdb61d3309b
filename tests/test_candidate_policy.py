"""The licence policy: one slug for every spelling the sources use (real recorded values from
tests/fixtures/real/api, origins in SOURCES.tsv), the ``licenses`` setting, and candidates
under other licences refused with reason ``license`` before anything is fetched."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from loopback import pdf_bytes
from oafetch import Config
from oafetch.candidate_policy import allowed_licenses, license_refusal, normalise_license
from oafetch.errors import ConfigError
from oafetch.results import DownloadResult
from oafetch.runstats import RunStats
from oafetch.tokens import Outcome, Reason
from peerj_chain import base_url, manifest_row, run_peerj
from test_openalex_real import PEERJ_WORK

REAL = Path(__file__).parent / "fixtures" / "real" / "api"


@pytest.mark.parametrize(
    ("spelt", "slug"),
    [
        # Crossref license[].URL as recorded (srep16696, jclinpath-2020-206745, pone.0033693)
        ("http://creativecommons.org/licenses/by/4.0/", "cc-by"),
        ("https://creativecommons.org/licenses/by/4.0", "cc-by"),
        ("http://creativecommons.org/licenses/by-nc/4.0/", "cc-by-nc"),
        # OpenAlex license_id and slugs, Unpaywall slugs
        ("https://openalex.org/licenses/cc-by", "cc-by"),
        ("https://openalex.org/licenses/cc-by-sa", "cc-by-sa"),
        ("https://openalex.org/licenses/other-oa", "other-oa"),
        ("cc-by-nc-nd", "cc-by-nc-nd"),
        ("publisher-specific-oa", "publisher-specific-oa"),
        ("public-domain", "public-domain"),
        # PMC's OA service, repositories, licence names as people write them
        ("CC BY", "cc-by"),
        ("CC-BY-4.0", "cc-by"),
        ("cc-by-4.0", "cc-by"),
        ("CC BY-NC-SA 3.0", "cc-by-nc-sa"),
        ("https://creativecommons.org/licenses/by-nc-sa/3.0/igo/", "cc-by-nc-sa"),
        ("CC0", "cc0"),
        # Semantic Scholar's openAccessPdf.license
        ("CCBY", "cc-by"),
        ("CCBYNC", "cc-by-nc"),
        ("CCBYNCSA", "cc-by-nc-sa"),
        ("CCBYND", "cc-by-nd"),
        ("CC0 1.0", "cc0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/", "cc0"),
        ("https://creativecommons.org/publicdomain/mark/1.0/", "public-domain"),
        ("Public Domain", "public-domain"),
        ("none", "none"),
        ("https://www.elsevier.com/tdm/userlicense/1.0/", "elsevier.com/tdm/userlicense/1.0"),
        ("cc-nc", "cc-nc"),  # not a licence CC publishes: left as spelt, never cc-by
    ],
)
def test_every_spelling_has_one_slug(spelt: str, slug: str) -> None:
    assert normalise_license(spelt) == slug


@pytest.mark.parametrize("spelt", [None, "", "   "])
def test_no_licence_is_none(spelt: str | None) -> None:
    assert normalise_license(spelt) is None


def test_recorded_crossref_licence_urls_all_name_a_cc_licence() -> None:
    urls = {
        item["URL"]
        for path in (REAL / "crossref").glob("*.json")
        for item in json.loads(path.read_text())["message"].get("license", [])
        if "creativecommons.org" in item["URL"]
    }
    assert len(urls) >= 3
    assert {normalise_license(u) for u in urls} == {"cc-by", "cc-by-nc"}


def test_recorded_openalex_licence_and_licence_id_agree() -> None:
    record = json.loads((REAL / "openalex" / "W2741809807.json").read_text())
    pairs = [
        (loc["license"], loc["license_id"])
        for loc in record["locations"]
        if loc.get("license") and loc.get("license_id")
    ]
    assert len(pairs) >= 4
    assert all(normalise_license(a) == normalise_license(b) for a, b in pairs)


def test_the_setting() -> None:
    assert allowed_licenses("any") is None
    assert allowed_licenses("ANY") is None
    assert allowed_licenses(["CC BY", "cc0", "public domain"]) == {"cc-by", "cc0", "public-domain"}
    with pytest.raises(ValueError, match="at least one"):
        allowed_licenses([])
    with pytest.raises(ValueError, match="names no licence"):
        allowed_licenses(["cc-by", " "])


def test_refusal() -> None:
    accepted = frozenset({"cc-by"})
    assert license_refusal("http://creativecommons.org/licenses/by/4.0/", accepted) is None
    assert license_refusal("cc-by-nc", accepted) == "licence cc-by-nc not accepted"
    assert license_refusal(None, accepted) == "no licence stated"
    assert license_refusal(None, None) is None
    assert license_refusal("publisher-specific-oa", None) is None


def test_config_normalises_and_names_the_key_of_a_bad_value() -> None:
    assert Config().download.licenses == "any"
    assert Config().download.accepted_licenses is None
    config = Config(download={"licenses": ["CC BY 4.0", "cc0"]})
    assert config.download.licenses == ("cc-by", "cc0")
    assert config.download.accepted_licenses == {"cc-by", "cc0"}
    with pytest.raises((ConfigError, ValueError), match="licenses"):
        Config(download={"licenses": []})


# -- end to end ----------------------------------------------------------------------------------

PDF_PUBLISHER = pdf_bytes(seed=1)
PDF_REPOSITORY = pdf_bytes(seed=2)


def run(
    server: HTTPServer, tmp_path: Path, licenses: Any, telemetry: bool = False
) -> tuple[DownloadResult, list[str]]:
    """PeerJ's recorded OpenAlex record with two file locations on loopback: the publisher's
    under ``publisher-specific-oa`` first, a repository's under ``cc-by`` second."""
    base = base_url(server)
    record = copy.deepcopy(PEERJ_WORK)
    publisher, repository = (copy.deepcopy(record["locations"][i]) for i in (0, 4))
    publisher.update(
        pdf_url=f"{base}/files/publisher.pdf", license="publisher-specific-oa", license_id=None
    )
    repository["pdf_url"] = f"{base}/files/repository.pdf"
    record["best_oa_location"] = publisher
    record["locations"] = [publisher, repository]
    record["open_access"]["oa_url"] = None
    files = {
        "/files/publisher.pdf": (PDF_PUBLISHER, "application/pdf", {}),
        "/files/repository.pdf": (PDF_REPOSITORY, "application/pdf", {}),
    }
    result, asked = run_peerj(
        server, tmp_path, record, files, telemetry=telemetry, licenses=licenses
    )
    return result, [p for p in asked if p.startswith("/files/")]


def test_any_licence_takes_the_first_file(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, fetched = run(httpserver, tmp_path, "any")
    assert result.outcome is Outcome.SUCCESS
    assert fetched == ["/files/publisher.pdf"]
    assert manifest_row(tmp_path)["license"] == "publisher-specific-oa"


def test_a_licence_list_skips_other_licences_to_an_accepted_file(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    result, fetched = run(httpserver, tmp_path, ["CC BY 4.0", "cc0"], telemetry=True)
    assert result.outcome is Outcome.SUCCESS
    assert fetched == ["/files/repository.pdf"]  # the publisher's file is never asked for
    row = manifest_row(tmp_path)
    assert (row["license"], row["version"], row["host_type"]) == (
        "cc-by",
        "submittedVersion",
        "repository",
    )
    assert (tmp_path / "out" / row["path"]).read_bytes() == PDF_REPOSITORY
    with sqlite3.connect(tmp_path / "out" / "telemetry.sqlite") as conn:
        stored = conn.execute(
            "SELECT outcome, version, license, host_type, retracted FROM downloads"
        ).fetchall()
    assert stored == [("success", "submittedVersion", "cc-by", "repository", None)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stored_by_version"] == {"submittedVersion": {"cc-by": 1}}
    assert summary["retracted"] == 0


def test_no_accepted_licence_is_a_license_skip(httpserver: HTTPServer, tmp_path: Path) -> None:
    result, fetched = run(httpserver, tmp_path, ["cc0"])
    assert (result.outcome, result.reason) == (Outcome.SKIP, Reason.LICENSE)
    assert fetched == []
    row = manifest_row(tmp_path)
    assert (row["outcome"], row["reason"]) == ("skip", "license")
    assert not list((tmp_path / "out").rglob("*.pdf"))


def test_the_run_summary_counts_stored_works_by_version_then_licence() -> None:
    stats = RunStats("r")
    said = [
        ("publishedVersion", "http://creativecommons.org/licenses/by/4.0/", True),
        ("publishedVersion", "cc-by", None),
        ("publishedVersion", None, None),
        ("submittedVersion", "CC BY-SA", None),
        (None, None, None),
    ]
    for i, (version, license, retracted) in enumerate(said):
        stats.add(
            DownloadResult(
                f"doi:10.1/{i}", Outcome.SUCCESS, Reason.OK, "", version=version,
                license=license, retracted=retracted,
            )
        )  # fmt: skip
    stats.add(DownloadResult("doi:10.1/x", Outcome.SKIP, Reason.RETRACTED, "", retracted=True))
    data = stats.as_dict()
    assert data["stored_by_version"] == {
        "publishedVersion": {"cc-by": 2, "unknown": 1},
        "submittedVersion": {"cc-by-sa": 1},
        "unknown": {"unknown": 1},
    }
    assert list(data["stored_by_version"]) == ["publishedVersion", "submittedVersion", "unknown"]
    assert data["retracted"] == 2


def test_bytes_stored_count_every_new_file_whatever_its_retraction() -> None:
    stats = RunStats("r")
    for i, (reason, retracted) in enumerate(
        [(Reason.OK, None), (Reason.OK, False), (Reason.OK, True), (Reason.RESUMED, None)]
    ):
        stats.add(
            DownloadResult(
                f"doi:10.1/{i}", Outcome.SUCCESS, reason, "", bytes=1000, retracted=retracted
            )
        )
    stats.add(DownloadResult("doi:10.1/x", Outcome.ERROR, Reason.NOT_PDF, "", bytes=7))
    data = stats.as_dict()
    assert data["bytes_stored"] == 3000  # the three new files; a resumed one is not new
    assert data["retracted"] == 1 and data["resumed"] == 1
