"""The billed ``openalex_content`` source against a loopback content API: off by default, needs
the key, buys a cached copy only when OpenAlex has one, never past its cap, never in a dry run,
and records what it spent in ``summary.json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from loopback import Handler, Loopback, pdf_bytes
from oafetch import Config, Downloader, Outcome
from oafetch.errors import ConfigError
from oafetch.resolvers.openalex import NO_KEY_NOTE
from oafetch.resolvers.registry import build_resolvers
from oafetch.tokens import Reason

KEY = "oa-content-Kq83Zt5Wm1x"
FIXTURES = Path(__file__).parent / "fixtures" / "real" / "api" / "openalex"
CONTENT_WORK = json.loads((FIXTURES / "W3038568908-content-documented.json").read_text())
NO_CONTENT_WORK = json.loads((FIXTURES / "W2741809807.json").read_text())
TEI = b'<?xml version="1.0" encoding="UTF-8"?>\n<TEI xmlns="http://www.tei-c.org/ns/1.0">' + (
    b"<text><body><p>Radiation resistant camera.</p></body></text></TEI>\n" * 40
)
SIGNED = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260301"
    "&X-Amz-Expires=3600&X-Amz-Signature=9f2c1d0e8b7a6f5e4d3c2b1a0f9e8d7c"
)


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPENALEX_API_KEY", raising=False)
    yield


def serve_openalex(server: Loopback, records: dict[str, dict[str, Any]]) -> list[str]:
    """Works API under /api, content API under /content (302 to a signed /r2 URL, like the real
    one); returns the list of content requests (path and query) it answered."""
    bought: list[str] = []
    body = pdf_bytes(30_000, seed=7)

    def work(wid: str) -> Any:
        def answer(h: Handler) -> None:
            h.reply(200, json.dumps(records[wid]).encode(), "application/json")

        return answer

    def content(wid: str, ext: str) -> Any:
        def answer(h: Handler) -> None:
            query = parse_qs(urlsplit(h.path).query)
            if query.get("api_key") != [KEY]:
                h.reply(401, b'{"error": "API key required"}', "application/json")
                return
            bought.append(h.path)
            location = server.url(f"/r2/{wid}.{ext}?{SIGNED}")
            h.reply(302, b"", "text/plain", {"Location": location, "X-Credits-Cost": "100"})

        return answer

    def signed(ext: str) -> Any:
        def answer(h: Handler) -> None:
            if "X-Amz-Signature=" not in h.path:
                h.reply(403, b"<Error>AccessDenied</Error>", "application/xml")
            elif ext == "pdf":
                h.reply(200, body, "application/pdf")
            else:
                h.reply(200, TEI, "application/xml")

        return answer

    for wid in records:
        server.routes[f"/api/works/{wid}"] = work(wid)
        for ext in ("pdf", "grobid-xml"):
            server.routes[f"/content/works/{wid}.{ext}"] = content(wid, ext)
            server.routes[f"/r2/{wid}.{ext}"] = signed(ext)
    return bought


def config(make_config: Any, server: Loopback, *, openalex: bool = True, **content: Any) -> Config:
    tiers = [{"name": "direct", "sources": ["openalex"]}] if openalex else []
    tiers.append({"name": "paid", "sources": ["openalex_content"]})
    settings = {
        "enabled": True,
        "base_url": server.url("/content"),
        "api_url": server.url("/api"),
        "api_key": KEY,
    }
    return make_config(
        resolvers={
            "openalex": {"enabled": openalex, "base_url": server.url("/api")},
            "openalex_content": {**settings, **content},
        },
        fallback={"tiers": tiers},
        robots={"enabled": False},
    )


def outputs(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())


def test_a_cached_pdf_is_bought_once_and_the_spend_recorded(
    server: Loopback, make_config: Any
) -> None:
    bought = serve_openalex(server, {"W3038568908": CONTENT_WORK})
    cfg = config(make_config, server)
    with Downloader(cfg, resume=False) as dl:
        [result] = list(dl.run(["https://openalex.org/W3038568908"]))
    assert (result.outcome, result.resolver) == (Outcome.SUCCESS, "openalex_content")
    assert len(bought) == 1 and bought[0].startswith("/content/works/W3038568908.pdf?")
    summary = json.loads((cfg.out_dir / "summary.json").read_text())
    assert summary["spending"]["openalex_content"] == {
        "calls": 1,
        "usd": 0.01,
        "usd_per_call": 0.01,
        "max_calls": 100,
        "max_usd": None,
        "refused": 0,
    }
    everything = outputs(cfg.out_dir)
    assert KEY.encode() not in everything and b"9f2c1d0e8b7a6f5e4d3c2b1a0f9e8d7c" not in everything


def test_the_cap_refuses_calls_past_max_calls(server: Loopback, make_config: Any) -> None:
    records = {
        w: {**CONTENT_WORK, "id": f"https://openalex.org/{w}"}
        for w in ("W3038568908", "W3038568909", "W3038568910")
    }
    bought = serve_openalex(server, records)
    cfg = config(make_config, server, max_calls=2)
    with Downloader(cfg, resume=False) as dl:
        results = list(dl.run(list(records)))
    assert len(bought) == 2
    assert sorted(r.outcome for r in results) == [Outcome.SKIP, Outcome.SUCCESS, Outcome.SUCCESS]
    refused = next(r for r in results if r.outcome is Outcome.SKIP)
    assert refused.reason is Reason.SPEND_CAP and "max_calls = 2" in refused.message
    spent = json.loads((cfg.out_dir / "summary.json").read_text())["spending"]["openalex_content"]
    assert (spent["calls"], spent["usd"], spent["refused"]) == (2, 0.02, 1)


def test_max_usd_caps_in_dollars(server: Loopback, make_config: Any) -> None:
    records = {
        w: {**CONTENT_WORK, "id": f"https://openalex.org/{w}"}
        for w in ("W3038568908", "W3038568909")
    }
    bought = serve_openalex(server, records)
    cfg = config(make_config, server, max_usd="0.015", usd_per_call=0.01, max_calls=1000)
    with Downloader(cfg, resume=False) as dl:
        results = list(dl.run(list(records)))
        assert dl.spending()["openalex_content"]["usd"] == 0.01
    assert len(bought) == 1 and {r.reason for r in results} == {Reason.OK, Reason.SPEND_CAP}


def test_a_dry_run_spends_nothing(server: Loopback, make_config: Any) -> None:
    bought = serve_openalex(server, {"W3038568908": CONTENT_WORK})
    cfg = config(make_config, server)
    with Downloader(cfg, resume=False) as dl:
        result = dl.fetch("W3038568908", dry_run=True)
        assert dl.spending()["openalex_content"]["calls"] == 0
    assert result.outcome is Outcome.SKIP and result.reason is Reason.OK
    assert bought == []


def test_a_work_openalex_has_no_copy_of_is_not_bought(server: Loopback, make_config: Any) -> None:
    """``has_content`` all false (the recorded W2741809807): the paid tier does not apply."""
    record = {
        **NO_CONTENT_WORK,
        "best_oa_location": None,
        "locations": [],
        "open_access": {"is_oa": False, "oa_url": None},
    }
    bought = serve_openalex(server, {"W2741809807": record})
    cfg = config(make_config, server)
    with Downloader(cfg, resume=False) as dl:
        [result] = list(dl.run(["W2741809807"]))
    assert result.reason is Reason.NO_CANDIDATE and bought == []


def test_unknown_content_is_looked_up_free_then_bought(server: Loopback, make_config: Any) -> None:
    """Without the ``openalex`` source, the content source asks the works API itself."""
    bought = serve_openalex(server, {"W3038568908": CONTENT_WORK})
    cfg = config(make_config, server, openalex=False)
    with Downloader(cfg, resume=False) as dl:
        [result] = list(dl.run(["W3038568908"]))
    assert result.outcome is Outcome.SUCCESS and len(bought) == 1
    lookup = next(s for s in server.log if s.path.startswith("/api/works/W3038568908"))
    query = parse_qs(urlsplit(lookup.path).query)
    assert query["select"] == ["id,has_content,content_urls"] and query["api_key"] == [KEY]


def test_tei_xml_is_bought_when_only_xml_is_accepted(server: Loopback, make_config: Any) -> None:
    bought = serve_openalex(server, {"W3038568908": CONTENT_WORK})
    cfg = config(make_config, server)
    cfg = Config(
        **{**cfg.model_dump(), "download": {**cfg.download.model_dump(), "accept": ("xml",)}}
    )
    with Downloader(cfg, resume=False) as dl:
        [result] = list(dl.run(["W3038568908"]))
    assert result.outcome is Outcome.SUCCESS and result.path is not None
    assert result.path.parent.name == "xml" and result.path.read_bytes() == TEI
    assert bought[0].startswith("/content/works/W3038568908.grobid-xml?")


def test_off_by_default_and_only_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet: dict[str, Any] = {"telemetry": {"enabled": False}}
    built, _ = build_resolvers(Config(**quiet))
    assert "openalex_content" not in built
    built, notes = build_resolvers(
        Config(resolvers={"openalex_content": {"enabled": True}}, **quiet)
    )
    assert "openalex_content" not in built
    assert any("openalex_content skipped" in n and "OPENALEX_API_KEY" in n for n in notes)
    shared = Config(
        resolvers={"openalex": {"api_key": "from-openalex"}, "openalex_content": {"enabled": True}},
        **quiet,
    )
    assert build_resolvers(shared)[0]["openalex_content"].secret == "from-openalex"
    monkeypatch.setenv("OPENALEX_API_KEY", "from-env")
    built, _ = build_resolvers(Config(resolvers={"openalex_content": {"enabled": True}}, **quiet))
    assert built["openalex_content"].secret == "from-env"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_calls", -1),
        ("max_calls", "ten"),
        ("max_calls", 2.5),
        ("max_usd", -0.5),
        ("usd_per_call", 0),
        ("max_usd", True),
    ],
)
def test_a_bad_cap_names_the_key_the_rule_and_the_value(key: str, value: Any) -> None:
    settings = {"enabled": True, "api_key": KEY, key: value}
    with pytest.raises(ConfigError) as info:
        build_resolvers(
            Config(resolvers={"openalex_content": settings}, telemetry={"enabled": False})
        )
    message = str(info.value)
    assert f"resolvers.openalex_content.{key}" in message and repr(value) in message
    assert KEY not in message


def test_openalex_without_a_key_warns_once_about_the_allowance(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    quiet: dict[str, Any] = {"telemetry": {"enabled": False}}
    notes = build_resolvers(Config(**quiet))[1]
    assert notes.count(NO_KEY_NOTE) == 1 and "\n" not in NO_KEY_NOTE
    assert "$0.01" in NO_KEY_NOTE and "OPENALEX_API_KEY" in NO_KEY_NOTE
    local = Config(resolvers={"openalex": {"base_url": "http://127.0.0.1:9"}}, **quiet)
    assert NO_KEY_NOTE not in build_resolvers(local)[1]  # a test server has no allowance
    monkeypatch.setenv("OPENALEX_API_KEY", "k-123456")
    assert NO_KEY_NOTE not in build_resolvers(Config(**quiet))[1]
    monkeypatch.delenv("OPENALEX_API_KEY")
    caplog.set_level(logging.WARNING, logger="oafetch")
    with Downloader(Config(out_dir=tmp_path / "o", **quiet), resume=False):
        pass
    assert [r.getMessage() for r in caplog.records].count(NO_KEY_NOTE) == 1


def test_the_sandbox_content_api_sells_its_cached_copies_under_the_cap(tmp_path: Path) -> None:
    """Against the sandbox's content.openalex.org: 302 to a signed URL, the cached bytes stored,
    the fourth purchase refused by ``max_calls = 3``."""
    import hashlib

    from oafetch.sandbox import Corpus, Sandbox
    from oafetch.sandbox.apis.openalex import cached_content
    from oafetch.sandbox_config import config_for
    from oafetch.works import IdKind, parse_work

    with Sandbox(corpus=Corpus(seed=5, n_works=40), rates_enforced=False) as sb:
        settings: dict[str, Any] = config_for(sb.base_urls, sb.rate_policies())
        settings["resolvers"]["openalex_content"].update(enabled=True, api_key=KEY, max_calls=3)
        settings.update(
            out_dir=tmp_path / "out",
            telemetry={"enabled": False},
            cache={"enabled": False},
            politeness={"enabled": False},
            download={"fsync": False},
            fallback={"tiers": [{"name": "paid", "sources": ["openalex_content"]}]},
        )
        works = [
            w
            for w in sb.works
            if "pdf" in cached_content(w) and parse_work(w.identifier).kind is IdKind.DOI
        ][:4]
        assert len(works) == 4
        with Downloader(Config(**settings), resume=False) as dl:
            results = list(dl.run([w.identifier for w in works]))
            spent = dl.spending()["openalex_content"]
        served = [e for e in sb.requests() if e["service"] == "openalex_content"]
        expected = {parse_work(w.identifier).work_id: w for w in works}
    stored = [r for r in results if r.outcome is Outcome.SUCCESS]
    assert len(stored) == 3 and (spent["calls"], spent["refused"]) == (3, 1)
    for result in stored:
        work = expected[result.work_id]
        assert result.sha256 == hashlib.sha256(sb.corpus.pdf_bytes(work)).hexdigest()
    assert [e["status"] for e in served].count(302) == 3
    assert [e["status"] for e in served].count(200) == 3


def test_the_spend_is_in_the_run_summary_table(server: Loopback, make_config: Any) -> None:
    import sqlite3

    bought = serve_openalex(server, {"W3038568908": CONTENT_WORK})
    cfg = config(make_config, server)
    cfg = Config(**{**cfg.model_dump(), "telemetry": {"enabled": True, "jsonl": False}})
    with Downloader(cfg, resume=False) as dl:
        [result] = list(dl.run(["W3038568908"]))
        run_id = dl.run_id
    assert result.outcome is Outcome.SUCCESS and len(bought) == 1
    with sqlite3.connect(cfg.out_dir / "telemetry.sqlite") as conn:
        row = conn.execute(
            "SELECT spend_calls, spend_usd, artifacts_success FROM run_summary WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    assert row == (1, 0.01, 1)


def test_a_store_made_before_the_spend_columns_gains_them(tmp_path: Path) -> None:
    """An older telemetry.sqlite (run_summary without spend_*) is read and written on."""
    import sqlite3

    from oafetch.telemetry import store, summary

    db = tmp_path / "telemetry.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            store.schema_sql().replace(
                ",\n    -- what billed sources (openalex_content) charged this run:"
                " calls and dollars"
                "\n    spend_calls         INTEGER NOT NULL DEFAULT 0,"
                "\n    spend_usd           REAL NOT NULL DEFAULT 0",
                "",
            )
        )
        assert "spend_calls" not in {r[1] for r in conn.execute("PRAGMA table_info(run_summary)")}
        summary.begin_run(conn, "r1", 1.0, "h", "v")
        assert summary.compute_run_summary(conn, "r1")["spend_calls"] == 0  # read as before
        store.add_missing_columns(conn)
        summary.finalize_run(
            conn,
            "r1",
            finished_at=2.0,
            spans_dropped=0,
            out_dir=None,
            spend_calls=3,
            spend_usd=0.03,
        )
        assert conn.execute("SELECT spend_calls, spend_usd FROM run_summary").fetchone() == (
            3,
            0.03,
        )


def test_the_cli_summary_says_what_was_spent(server: Loopback, tmp_path: Path) -> None:
    import subprocess
    import sys

    bought = serve_openalex(server, {"W3038568908": CONTENT_WORK})
    toml = tmp_path / "oafetch.toml"
    toml.write_text(
        "[telemetry]\nenabled = false\n[politeness]\nenabled = false\n[robots]\nenabled = false\n"
        "[cache]\nenabled = false\n[download]\nfsync = false\n"
        f'[resolvers.openalex]\nbase_url = "{server.url("/api")}"\n'
        f'[resolvers.openalex_content]\nenabled = true\napi_key = "{KEY}"\nmax_usd = 1.5\n'
        f'base_url = "{server.url("/content")}"\napi_url = "{server.url("/api")}"\n'
        '[[fallback.tiers]]\nname = "direct"\nsources = ["openalex"]\n'
        '[[fallback.tiers]]\nname = "paid"\nsources = ["openalex_content"]\n'
    )
    ids = tmp_path / "ids.txt"
    ids.write_text("https://openalex.org/W3038568908\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "oafetch.cli",
            "run",
            str(ids),
            "--config",
            str(toml),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "spent via openalex_content" in done.stdout and "$0.01 (1 calls)" in done.stdout
    assert KEY not in done.stdout + done.stderr and len(bought) == 1


def test_a_copy_the_cap_refuses_at_download_time_is_a_skip(
    server: Loopback, make_config: Any
) -> None:
    """Works race for the last paid call: the loser's candidate was offered before the cap ran
    out and is refused only when it is about to be fetched. Still a skip (``spend-cap``), not an
    error: a later run with room in its cap buys it."""
    records = {
        w: {**CONTENT_WORK, "id": f"https://openalex.org/{w}"}
        for w in ("W3038568908", "W3038568909")
    }
    bought = serve_openalex(server, records)
    cfg = config(make_config, server, max_calls=1)
    with Downloader(cfg, resume=False) as dl:
        first = dl.fetch("W3038568908")
        cap = dl.fallback.resolvers["openalex_content"].cap  # type: ignore[attr-defined]
        cap.exhausted = lambda: False  # as if the other work had been offered its copy earlier
        second = dl.fetch("W3038568909")
    assert first.outcome is Outcome.SUCCESS and len(bought) == 1
    assert (second.outcome, second.reason) == (Outcome.SKIP, Reason.SPEND_CAP)
