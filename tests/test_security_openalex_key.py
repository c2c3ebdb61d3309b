"""The OpenAlex API key reaches OpenAlex and nothing else.

A batch over the sandbox web with the key in ``OPENALEX_API_KEY``, the works API and the billed
content API both in use (the key rides in the ``api_key`` parameter of each), the HTTP cache on,
telemetry fully on (SQLite, JSONL, a live OTLP receiver), then a list-only pass that writes the
content URLs into the manifest. Afterwards no output holds the key in any encoding: not the
output directory (manifest, attempts.csv, summary.json, telemetry database with its WAL,
spans.jsonl), not the cache database and its keys, not the OTLP payloads, the log records,
stdout/stderr or any result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from faults import files_under
from oafetch import Config, Downloader, Outcome
from oafetch.sandbox import Corpus, Sandbox
from oafetch.sandbox_config import config_for
from oafetch.urls import canonical_url, is_secret_name, redact_url, url_hash
from otlp_receiver import http_receiver

KEY = "oakey-Hv72Qe9Lp3Zw"
FORMS = [f.encode() for f in {KEY, quote(KEY, safe=""), quote_plus(KEY)}]


def leaks(blob: bytes) -> bool:
    return any(form in blob for form in FORMS)


def test_the_key_parameter_is_a_credential_by_rule() -> None:
    url = f"https://content.openalex.org/works/W1.pdf?api_key={KEY}"
    assert is_secret_name("api_key") and is_secret_name("api-key") and is_secret_name("apiKey")
    assert KEY not in redact_url(url) and KEY not in canonical_url(url)
    assert url_hash(url) == url_hash("https://content.openalex.org/works/W1.pdf")


@pytest.mark.slow
def test_the_openalex_key_reaches_no_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENALEX_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    out, cache = tmp_path / "out", tmp_path / "cache"
    with (
        Sandbox(
            corpus=Corpus(seed=13, n_works=40),
            rates_enforced=False,
            arxiv_crawl_delay=0.1,
            slow_seconds=0.3,
        ) as sb,
        http_receiver() as (collector_url, collector),
    ):
        settings: dict[str, Any] = config_for(sb.base_urls, sb.rate_policies())
        settings["resolvers"]["openalex_content"]["enabled"] = True
        settings.update(
            out_dir=out,
            workers=6,
            politeness={"enabled": False},
            cache={"enabled": True, "dir": cache},
            download={"fsync": False},
            telemetry={"enabled": True, "otlp_endpoint": collector_url, "otlp_timeout_s": 2},
        )
        config = Config.load(None, **settings)
        identifiers = [w.identifier for w in sb.works]
        with Downloader(config, resume=False) as dl:
            assert dl.fallback.resolvers["openalex_content"].secret == KEY
            results = list(dl.run(identifiers))
            spent = dl.spending()["openalex_content"]
        with Downloader(config, resume=False) as dl:  # the content URLs, listed in the manifest
            listed = list(dl.run(identifiers, list_only=True))
        sent = sb.requests()
        otlp = list(collector.bodies)

    assert sum(r.outcome is Outcome.SUCCESS for r in results) >= 20
    # The key was really in play: both OpenAlex APIs received it, and copies were bought …
    services = {e["service"] for e in sent if KEY in e["path"]}
    assert services >= {"openalex", "openalex_content"}
    assert spent["calls"] >= 1 and any(r.resolver == "openalex_content" for r in results)
    assert b"content" in (out / "manifest.jsonl").read_bytes()
    assert otlp, "the collector received telemetry"
    # … and it is nowhere else.
    found: list[str] = []
    for root in (out, cache):
        found += [str(p) for p in files_under(root) if leaks(p.read_bytes())]
    found += [f"otlp #{n} {signal}" for n, (signal, body) in enumerate(otlp) if leaks(body)]
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    if leaks(logs.encode()):
        found.append("log records")
    captured = capsys.readouterr()
    if leaks((captured.out + captured.err).encode()):
        found.append("stdout/stderr")
    if leaks(" ".join(f"{r.message} {r.url}" for r in [*results, *listed]).encode()):
        found.append("result messages")
    assert not found, f"the OpenAlex key leaked into: {found}"
    assert any(files_under(cache)), "the cache was in use"
