"""TDM reservations end to end on the sandbox web: publishers that reserve TDM rights on a
work's PDF by response header, by a rule of their ``/.well-known/tdmrep.json``, or by meta
elements on the landing page that alone links the PDF. With ``tdm = true`` every reserved file
is refused (``tdm-reserved``, the publisher's policy URL in the manifest) and the other works
are stored as before; with ``tdm = false`` (the default) the reserved works are stored too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oafetch import Downloader, Outcome
from oafetch.demo import demo_config
from oafetch.results import DownloadResult
from oafetch.sandbox import Corpus, Sandbox
from oafetch.sandbox.behaviours import TDM_POLICY_PATH, TDM_REASON
from oafetch.sandbox.model import Behaviour
from oafetch.works import parse_work

RATES = {"unpaywall": "40/s", "crossref": "40/s", "openalex": "40/s", "*": "40/s"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    corpus = Corpus(
        seed=13,
        n_works=12,
        mix={Behaviour.TDM_RESERVED: 6, Behaviour.DIRECT_OA: 3, Behaviour.LANDING_ONLY: 3},
    )
    with Sandbox(corpus=corpus, rates=RATES) as sb:
        yield sb


def _run(sandbox: Sandbox, out: Path, **overrides: Any) -> dict[str, DownloadResult]:
    config = demo_config(sandbox, out, workers=4, cache={"enabled": False}, **overrides)
    with Downloader(config, resume=False) as dl:
        results = list(dl.run([w.identifier for w in sandbox.works]))
    return {r.work_id: r for r in results}


def _manifest(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {row["work_id"]: row for row in rows}


def test_every_reserved_file_is_refused_with_tdm(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = _run(sandbox, out, download={"tdm": True})
    rows = _manifest(out)
    works = {parse_work(w.identifier).work_id: w for w in sandbox.works}
    reserved = [i for i, w in works.items() if w.behaviour is Behaviour.TDM_RESERVED]
    assert {works[i].variant for i in reserved} == {"header", "well_known", "meta"}
    assert len(reserved) == 6
    for work_id in reserved:
        work, result = works[work_id], results[work_id]
        assert (result.outcome, str(result.reason)) == (
            Outcome.SKIP,
            TDM_REASON[Behaviour.TDM_RESERVED],
        ), (work.variant, result.message)
        policy = rows[work_id]["tdm_policy"]
        assert policy is not None and policy.endswith(TDM_POLICY_PATH), work.variant
    for work_id, work in works.items():
        if work.behaviour is not Behaviour.TDM_RESERVED:
            assert results[work_id].outcome is Outcome.SUCCESS, work.behaviour
            assert results[work_id].sha256 == work.expected_sha256
    stored = {p.name for p in out.rglob("*.pdf")}
    assert len(stored) == len(works) - len(reserved)


def test_without_tdm_the_reserved_works_are_stored(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = _run(sandbox, out)
    for work in sandbox.works:
        result = results[parse_work(work.identifier).work_id]
        assert result.outcome is Outcome.SUCCESS, (work.behaviour, work.variant, result.message)
        assert result.sha256 == work.expected_sha256
    assert all(row["tdm_policy"] is None for row in _manifest(out).values())
