"""Credentials found by rule (names, values, nested encodings), never told to third parties, and
identifiers that cannot climb out of an API's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pytest_httpserver import HTTPServer

from loopback import Loopback
from oafetch import Downloader
from oafetch.config import Config
from oafetch.errors import FetchError, InputError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import WorkIds, quote_path
from oafetch.resolvers.wayback import WaybackResolver
from oafetch.tokens import Reason
from oafetch.urls import canonical_url, is_secret_name, redact_url, strip_secrets
from oafetch.works import parse_work

# Values chosen so that only the rule (not a list of names) can find them.
NAMED = {
    "access-token": "at-5Yq2",
    "auth_token": "aut-7Hk3",
    "jwt": "jw-9Lm4",
    "private_token": "pt-1Qz8",
    "session_id": "sid-3Xc6",
    "X-Goog-Signature": "gs-2Vb5",
    "clientSecret": "cs-8Nn1",
}
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJlLWhlcmU"
NESTED_KEY = "nested-K4y9Rw"


@pytest.mark.parametrize("name", [*NAMED, "apiKey", "KEY", "x-api-key", "PHPSESSID", "pwd"])
def test_a_credential_name_is_recognised_by_rule(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["author", "page", "keywords", "q", "format", "id", "design"])
def test_ordinary_parameter_names_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def _hostile_url(base: str) -> str:
    nested = quote(f"https://cdn.example/f.pdf?key={NESTED_KEY}&x=1", safe="")
    named = "&".join(f"{k}={v}" for k, v in NAMED.items())
    return f"{base}/paper.pdf?{named}&t={JWT}&next={nested}&id=7"


def test_redaction_covers_names_values_and_nested_urls() -> None:
    url = _hostile_url("https://pub.example")
    for form in (redact_url(url), canonical_url(url), strip_secrets(url)):
        for secret in [*NAMED.values(), JWT, NESTED_KEY]:
            assert secret not in form, (secret, form)
        assert "id=7" in form, "ordinary parameters survive"
    # twice percent-encoded, the key is still found
    twice = "https://pub.example/r?u=" + quote(
        quote(f"https://a.example/?api_key={NESTED_KEY}", safe=""), safe=""
    )
    assert NESTED_KEY not in redact_url(twice) and NESTED_KEY not in canonical_url(twice)


@pytest.mark.slow
def test_a_urls_own_keys_reach_no_output_and_no_third_party(
    server: Loopback, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """The user's URL goes to its own host with its keys; the archive is told it without them,
    and no output (manifest, attempts, telemetry, spans, cache) holds any of them."""
    server.routes["/paper.pdf"] = lambda h: h.reply(404, b"gone", "text/plain")
    httpserver.expect_request("/wayback/available").respond_with_json({"archived_snapshots": {}})
    httpserver.expect_request("/cdx/search/cdx").respond_with_json([])
    out = tmp_path / "out"
    base = httpserver.url_for("").rstrip("/")
    config = Config(
        out_dir=out,
        mailto="tester@oafetch.test",
        retry={"attempts": 1},
        politeness={"enabled": False},
        robots={"enabled": False},
        download={"fsync": False},
        cache={"enabled": True, "dir": tmp_path / "cache", "ttl_s": {"127.0.0.1": "1h"}},
        telemetry={"enabled": True},
        resolvers={
            "wayback": {"base_url": base, "cdx_url": base, "web_url": "https://web.archive.example"}
        },
        fallback={
            "tiers": [
                {"name": "page", "sources": ["landing_page"]},
                {"name": "archive", "sources": ["wayback"]},
            ]
        },
    )
    url = _hostile_url(server.base)
    with Downloader(config, resume=False) as dl:
        dl.fetch(url)
    assert server.hits("/paper.pdf"), "the URL was fetched from its own host"
    asked = [entry[0].query_string.decode() for entry in httpserver.log]
    assert asked, "the archive was asked"
    secrets = [*NAMED.values(), JWT, NESTED_KEY]
    for query in asked:
        assert not [s for s in secrets if s in query or quote(s, safe="") in query], query
    blobs = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    blobs.update({p.name: p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()})
    leaks = {name: s for name, blob in blobs.items() for s in secrets if s.encode() in blob}
    assert not leaks, leaks
    assert {"manifest.jsonl", "attempts.csv", "spans.jsonl", "telemetry.sqlite"} <= set(blobs)


def test_the_archive_is_asked_without_the_urls_credentials(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/wayback/available").respond_with_json({"archived_snapshots": {}})
    httpserver.expect_request("/cdx/search/cdx").respond_with_json([])
    base = httpserver.url_for("").rstrip("/")
    config = Config(
        mailto="tester@oafetch.test",
        politeness={"enabled": False},
        telemetry={"enabled": False},
        resolvers={"wayback": {"base_url": base, "cdx_url": base}},
    )
    resolver = WaybackResolver(config.resolver("wayback"), config)
    work = parse_work("https://pub.example/a.pdf?api_key=K-9f8e7d&auth_token=zz1&v=2")
    with HttpClient(config) as http:
        resolver.candidates(work, WorkIds.of(work), http)
    urls = [dict(e[0].args)["url"] for e in httpserver.log]
    assert urls and all(u == "https://pub.example/a.pdf?v=2" for u in urls), urls


# -- identifiers as URL paths ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "10.1234/../../../../admin/delete",
        "10.1234/%2e%2e/%2E%2E/admin",
        "doi:10.1234/./x",
        "https://doi.org/10.1234/..%2F..%2Fadmin",
    ],
)
def test_a_doi_with_dot_segments_is_refused_as_input(text: str) -> None:
    with pytest.raises(InputError, match=r"'\.' or '\.\.' segment"):
        parse_work(text)


def test_a_dot_segment_never_becomes_a_request_path() -> None:
    with pytest.raises(FetchError) as caught:
        quote_path("10.1234/../../admin")
    assert caught.value.reason is Reason.BAD_INPUT
    assert quote_path("10.1000/a b/c?d#e") == "10.1000/a%20b/c%3Fd%23e"


def test_a_dot_segment_doi_learnt_from_a_source_sends_nothing_outside_the_api(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """An API names a hostile DOI for a PMID: the next source never requests a path outside
    its own prefix, and the user's email goes nowhere else."""
    httpserver.expect_request("/works/pmid:123").respond_with_json(
        {
            "id": "https://openalex.org/W1",
            "doi": "https://doi.org/10.1234/../../../admin/delete",
            "open_access": {"is_oa": False},
            "locations": [],
        }
    )
    base = httpserver.url_for("").rstrip("/")
    config = Config(
        out_dir=tmp_path / "out",
        mailto="tester@oafetch.test",
        retry={"attempts": 1},
        politeness={"enabled": False},
        telemetry={"enabled": False},
        cache={"enabled": False},
        download={"fsync": False},
        resolvers={
            "openalex": {"base_url": base},
            "unpaywall": {"base_url": base + "/up"},
            "crossref": {"base_url": base + "/cr"},
        },
        fallback={
            "tiers": [
                {"name": "a", "sources": ["openalex"]},
                {"name": "b", "sources": ["unpaywall", "crossref"]},
            ]
        },
    )
    with Downloader(config, resume=False) as dl:
        dl.fetch("PMID:123")
    paths = [entry[0].path for entry in httpserver.log]
    assert paths[0] == "/works/pmid:123"
    assert all(p.startswith(("/works/", "/up/", "/cr/")) for p in paths), paths
    assert not [p for p in paths if "admin" in p], paths


# -- trace context stays home ---------------------------------------------------------------------
@pytest.mark.parametrize("opted_in", [False, True])
def test_traceparent_goes_only_to_hosts_the_user_opts_in(
    server: Loopback, make_config: Any, opted_in: bool
) -> None:
    body = b"%PDF-1.7\n" + b"0" * 4000 + b"\n%%EOF\n"
    server.routes["/a.pdf"] = lambda h: h.reply(200, body, "application/pdf")
    config = make_config(
        telemetry={"enabled": True, "propagate_to": ["127.0.0.1"] if opted_in else []},
        robots={"enabled": False},
    )
    with Downloader(config, resume=False) as dl:
        dl.fetch(server.url("/a.pdf"))
    headers = {k.lower() for k in server.hits("/a.pdf")[0].headers}
    assert ("traceparent" in headers) is opted_in


@pytest.mark.parametrize("url", ["http://?/=?=", "https://x.org/?a=%3F%3D&b=c?d=e"])
def test_redaction_is_idempotent_on_values_that_hold_no_secret(url: str) -> None:
    """A nested query without a secret is left as it is, not re-encoded on every pass."""
    from oafetch.urls import redact_url

    once = redact_url(url)
    assert redact_url(once) == once
