"""The version, licence and retraction policies end to end on the sandbox web.

``versions`` works have a preprint (arXiv, no licence) and an accepted manuscript (HAL, cc-by)
the direct tier finds (Unpaywall, OpenAlex), and the published article (PMC and Europe PMC,
cc-by-nc-nd) that only the repositories tier finds; ``retracted`` works are direct-OA works
that OpenAlex, Crossref and PMC mark retracted. Each has a known right outcome under each
setting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oafetch import Downloader, Outcome
from oafetch.candidate_policy import normalise_license
from oafetch.demo import demo_config
from oafetch.results import DownloadResult
from oafetch.sandbox import Corpus, Sandbox
from oafetch.sandbox.behaviours import VERSIONS_PUBLISHED_LICENSE
from oafetch.sandbox.model import Behaviour, SandboxWork
from oafetch.works import parse_work

RATES = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "40/s"}
PREFER = ["publishedVersion", "acceptedVersion", "submittedVersion"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    corpus = Corpus(
        seed=17,
        n_works=9,
        mix={Behaviour.VERSIONS: 4, Behaviour.RETRACTED: 3, Behaviour.DIRECT_OA: 2},
    )
    with Sandbox(corpus=corpus, rates=RATES) as sb:
        yield sb


def _run(
    sandbox: Sandbox, out: Path, **download: Any
) -> tuple[dict[str, tuple[SandboxWork, DownloadResult]], dict[str, dict[str, Any]]]:
    config = demo_config(
        sandbox, out, workers=4, cache={"enabled": False}, download={"fsync": False, **download}
    )
    with Downloader(config, resume=False) as dl:
        results = {r.work_id: r for r in dl.run([w.identifier for w in sandbox.works])}
    works = {parse_work(w.identifier).work_id: w for w in sandbox.works}
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {i: (works[i], results[i]) for i in works}, {r["work_id"]: r for r in rows}


def test_prefer_stores_every_versions_work_as_published(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "out"
    got, rows = _run(sandbox, out, prefer=PREFER)
    versions = [(w, r) for w, r in got.values() if w.behaviour is Behaviour.VERSIONS]
    assert len(versions) == 4
    for work, result in versions:
        assert result.outcome is Outcome.SUCCESS, result.message
        assert result.sha256 == work.expected_sha256
        assert result.version == "publishedVersion", (result.resolver, result.url)
        licence = normalise_license(result.license)
        assert licence == VERSIONS_PUBLISHED_LICENSE, (result.resolver, result.license)
    for work, result in got.values():  # the other works are stored as ever
        assert result.outcome is Outcome.SUCCESS, (work.behaviour, result.message)
        if work.behaviour is Behaviour.RETRACTED:
            assert result.retracted is True and rows[result.work_id]["retracted"] is True
        elif work.behaviour is Behaviour.DIRECT_OA:
            assert rows[result.work_id]["retracted"] is None
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["stored_by_version"]["publishedVersion"].values()) == len(got)
    assert summary["retracted"] == 3


def test_a_licence_list_stores_the_accepted_manuscript(sandbox: Sandbox, tmp_path: Path) -> None:
    got, _ = _run(sandbox, tmp_path / "out", prefer=PREFER, licenses=["cc-by"])
    for work, result in got.values():
        assert result.outcome is Outcome.SUCCESS, (work.behaviour, result.message)
        assert normalise_license(result.license) == "cc-by"
        if work.behaviour is Behaviour.VERSIONS:
            assert result.version == "acceptedVersion", (result.resolver, result.url)
            assert result.sha256 == work.expected_sha256


def test_no_accepted_licence_is_a_license_skip(sandbox: Sandbox, tmp_path: Path) -> None:
    got, _ = _run(sandbox, tmp_path / "out", licenses=["cc0"])
    for work, result in got.values():
        assert (result.outcome, str(result.reason)) == (Outcome.SKIP, "license"), work.behaviour
    assert not list((tmp_path / "out").rglob("*.pdf"))


def test_skip_retracted_refuses_exactly_the_retracted_works(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    got, rows = _run(sandbox, tmp_path / "out", skip_retracted=True)
    for work, result in got.values():
        if work.behaviour is Behaviour.RETRACTED:
            assert (result.outcome, str(result.reason)) == (Outcome.SKIP, "retracted")
            assert rows[result.work_id]["path"] is None
        else:
            assert result.outcome is Outcome.SUCCESS, (work.behaviour, result.message)
