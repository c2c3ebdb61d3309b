"""Records that stay exact when works park and resume: one ``success`` row in
``fallback_attempts`` per stored work, whatever path it took, and a resumed run whose
``run_summary`` says what its ``summary.json`` says."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopback import Loopback, pdf_bytes, start
from oafetch import Downloader, Outcome

N = 6


@pytest.fixture
def api_and_slow_host() -> Iterator[tuple[Loopback, Loopback]]:
    api, files = start("127.0.0.1"), start("127.0.0.2")
    yield api, files
    for box in (api, files):
        box.server.shutdown()
        box.server.server_close()


def _serve(api: Loopback, files: Loopback) -> list[str]:
    dois = [f"10.5555/park.{i}" for i in range(N)]
    for i, doi in enumerate(dois):
        record = {
            "doi": doi,
            "is_oa": True,
            "best_oa_location": {"url_for_pdf": files.url(f"/f/{i}.pdf")},
        }
        body = json.dumps(record).encode()
        api.routes[f"/v2/{doi}"] = lambda h, b=body: h.reply(200, b, "application/json")
        pdf = pdf_bytes(3000, seed=i)
        files.routes[f"/f/{i}.pdf"] = lambda h, p=pdf: h.reply(200, p, "application/pdf")
    return dois


def _config(make_config: Any, api: Loopback) -> Any:
    return make_config(
        workers=4,
        telemetry={"enabled": True, "jsonl": False},
        politeness={"enabled": True, "defer_after_s": 0.3},
        rates={"127.0.0.1": "50/s", "127.0.0.2": "2/s"},
        robots={"enabled": False},
        resolvers={"unpaywall": {"enabled": True, "base_url": api.base, "email": "t@x.test"}},
        fallback={"tiers": [{"name": "oa", "sources": ["unpaywall"]}]},
    )


def test_every_stored_work_has_exactly_one_success_attempt_even_when_parked(
    api_and_slow_host: tuple[Loopback, Loopback], make_config: Any, tmp_path: Path
) -> None:
    api, files = api_and_slow_host
    dois = _serve(api, files)
    with Downloader(_config(make_config, api), resume=False) as dl:
        results = list(dl.run(dois))
        parked = dl.stats.as_dict().get("parked")
    stored = {r.work_id for r in results if r.outcome is Outcome.SUCCESS}
    assert len(stored) == N
    with sqlite3.connect(tmp_path / "out" / "telemetry.sqlite") as db:
        rows = list(db.execute("SELECT work_id, outcome, reason, tier FROM fallback_attempts"))
        downloads = {
            w for (w,) in db.execute("SELECT work_id FROM downloads WHERE outcome = 'success'")
        }
    success = Counter(w for w, outcome, _, _ in rows if outcome == "success")
    assert set(success) == stored and set(success.values()) == {1}, rows
    waited = [r for r in rows if r[2] == "rate-budget"]
    assert waited, f"the slow host made works park (parked={parked}): the test covers it"
    assert all(r[3] == "oa" for r in rows), "a resumed attempt is recorded in its source's tier"
    assert downloads == stored


def test_a_resumed_runs_run_summary_equals_its_summary_json(
    api_and_slow_host: tuple[Loopback, Loopback], make_config: Any, tmp_path: Path
) -> None:
    api, files = api_and_slow_host
    dois = _serve(api, files)
    config = _config(make_config, api)
    with Downloader(config, resume=False) as dl:
        list(dl.run(dois[: N // 2]))
    with Downloader(config, resume=True) as dl:
        list(dl.run(dois))
        run_id = dl.run_id
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    with sqlite3.connect(tmp_path / "out" / "telemetry.sqlite") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM run_summary WHERE run_id = ?", (run_id,)).fetchone()
    assert summary["resumed"] == N // 2
    for key in ("artifacts_total", "artifacts_success", "yield_pct"):
        assert row[key] == pytest.approx(summary[key]), key
    assert row["artifacts_total"] == N and row["artifacts_success"] == N
