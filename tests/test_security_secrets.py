"""No credential ever leaves the process except to the API it belongs to.

A batch over the sandbox web with every credential oafetch knows configured — API keys in the
environment, an Unpaywall email, a bearer token, a mailto — and telemetry fully on (SQLite,
JSONL, a live OTLP receiver). Afterwards no output holds any of them, in any encoding: not the
manifest, attempts.csv, summary.json, the telemetry database (raw bytes, WAL included),
spans.jsonl, the OTLP payloads, the captured log records, stdout/stderr or any result message.
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
from otlp_receiver import http_receiver

SECRETS = {
    "OPENALEX_API_KEY": "oakey-Zq81xW3vT0p",
    "CORE_API_KEY": "corekey-Mb52Lk9Hh7d",
    "S2_API_KEY": "s2key-Pr44Yt6Ww2n",
    "NCBI_API_KEY": "ncbikey-Gd73Rf1Qs5a",
    "OPENAIRE_API_TOKEN": "bearer-Xk29Jc8Vn4m",  # sent as Authorization: Bearer …
}
UNPAYWALL_EMAIL = "unpaywall.secret.k3@oafetch.dev"
MAILTO = "mailto.secret.q7@oafetch.dev"
RATES = {
    "unpaywall": "50/s",
    "crossref": "50/s",
    "openalex": "50/s",
    "arxiv_api": "10/s",
    "arxiv": "10/s",
    "*": "30/s",
}


def _forms(secret: str) -> list[bytes]:
    """The encodings a secret could take in an output."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    if "@" in secret:
        local, domain = secret.split("@")
        forms |= {local, f"{local}%40{domain}"}
    return [f.encode() for f in forms]


ALL_SECRETS = [*SECRETS.values(), UNPAYWALL_EMAIL, MAILTO]


def _leaks(blob: bytes) -> list[str]:
    return [s for s in ALL_SECRETS if any(form in blob for form in _forms(s))]


@pytest.mark.slow
def test_no_credential_reaches_any_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    out = tmp_path / "out"
    with (
        Sandbox(
            corpus=Corpus(seed=11, n_works=40), rates=RATES, arxiv_crawl_delay=0.1, slow_seconds=0.3
        ) as sb,
        http_receiver() as (collector_url, collector),
    ):
        settings: dict[str, Any] = config_for(sb.base_urls, sb.rate_policies())
        settings["resolvers"]["core"].pop("api_key", None)  # from CORE_API_KEY instead
        settings["resolvers"]["unpaywall"]["email"] = UNPAYWALL_EMAIL
        settings.update(
            mailto=MAILTO,
            out_dir=out,
            workers=6,
            cache={"enabled": False},
            download={"fsync": False},
            telemetry={"enabled": True, "otlp_endpoint": collector_url, "otlp_timeout_s": 2},
        )
        config = Config.load(None, **settings)
        with Downloader(config, resume=False) as dl:
            # the secrets are really in use: the run would not be a test otherwise
            assert {r.name for r in dl.fallback.resolvers.values()} >= {"core", "openaire"}
            results = list(dl.run([w.identifier for w in sb.works]))
        sent = sb.requests()
        otlp = list(collector.bodies)

    assert sum(r.outcome is Outcome.SUCCESS for r in results) >= 20
    # The credentials did reach their APIs (so they were in play during the run) …
    assert any(e["service"] == "unpaywall" and e["status"] == 200 for e in sent), "email accepted"
    assert {e["service"] for e in sent if e["has_authorization"]} >= {"core", "openaire"}
    assert any(MAILTO in (e["user_agent"] or "") for e in sent), "the mailto is in the UA"
    assert otlp, "the collector received telemetry"
    # … and nowhere else.
    found: dict[str, list[str]] = {}
    for path in files_under(out):
        if leaked := _leaks(path.read_bytes()):
            found[str(path.relative_to(out))] = leaked
    for number, (signal, body) in enumerate(otlp):
        if leaked := _leaks(body):
            found[f"otlp #{number} {signal}"] = leaked
    logs = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    ).encode()
    if leaked := _leaks(logs):
        found["log records"] = leaked
    captured = capsys.readouterr()
    if leaked := _leaks((captured.out + captured.err).encode()):
        found["stdout/stderr"] = leaked
    if leaked := _leaks(" ".join(f"{r.message} {r.url}" for r in results).encode()):
        found["result messages"] = leaked
    assert not found, f"credentials leaked: {found}"
    assert (out / "telemetry.sqlite").stat().st_size > 0 and (out / "spans.jsonl").exists()
