"""The cache's pure decisions, table-driven: freshness rules, admission, keys and credentials."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from oafetch.config import CacheConfig, Config
from oafetch.errors import ConfigError
from oafetch.http.cache_policy import (
    FreshnessRules,
    assume_freshness,
    body_refusal,
    cache_key,
    cache_url,
    clean_request_headers,
    clean_response_headers,
    ensure_date,
    freshness_lifetime,
    is_local_host,
    refusal,
    scrub_body,
    serve_stale,
    vary_matches,
    worth_storing,
)

DAY = 86400.0
NOW = 1_800_000_000.0


def dated(seconds_ago: float, **headers: str) -> dict[str, list[str]]:
    found = {k.replace("_", "-"): [v] for k, v in headers.items()}
    return {"date": [formatdate(NOW - seconds_ago, usegmt=True)], **found}


@pytest.mark.parametrize(
    ("host", "role", "status", "ttl", "swr"),
    [
        ("api.crossref.org", "metadata", 200, 3 * DAY, 180.0),
        ("api.openalex.org", "metadata", 200, 3 * DAY, 180.0),
        ("api.crossref.org", "landing", 200, DAY, 0.0),  # the rule is for metadata
        ("web.archive.org", "landing", 200, 7 * DAY, 0.0),  # "archive.org" covers subdomains
        ("archive.org", "metadata", 200, 7 * DAY, 0.0),
        ("api.unpaywall.org", "metadata", 200, DAY, 0.0),  # the default
        ("api.unpaywall.org", "metadata", 404, 3600.0, 0.0),  # negative answers: shorter
        ("127.0.0.1", "metadata", 200, 0.0, 0.0),  # a development server: nothing assumed
        ("localhost", "robots", 200, 0.0, 0.0),
        ("10.0.0.7", "landing", 200, 0.0, 0.0),
    ],
)
def test_builtin_freshness_rules(host: str, role: str, status: int, ttl: float, swr: float) -> None:
    rules = FreshnessRules()
    assert rules.ttl(host, role, status) == ttl
    assert rules.swr(host, role) == swr


def test_user_rules_win_most_specific_first_then_builtins_then_the_catch_all() -> None:
    rules = FreshnessRules(
        ttl_s={
            "api.crossref.org": 60.0,
            "example.org/landing": 120.0,
            "*": 30.0,
            "127.0.0.1": 10.0,
        },
        swr_s={"*": 5.0},
    )
    assert rules.ttl("api.crossref.org", "metadata") == 60.0, "a user host rule beats a built-in"
    assert rules.ttl("www.example.org", "landing") == 120.0
    assert rules.ttl("www.example.org", "metadata") == 30.0, "the catch-all"
    assert rules.ttl("web.archive.org", "landing") == 7 * DAY, "built-ins beat the catch-all"
    assert rules.ttl("127.0.0.1", "metadata") == 10.0, "a rule naming a local host applies"
    assert rules.ttl("127.0.0.2", "metadata") == 0.0, "the catch-all does not"
    assert rules.swr("api.crossref.org", "metadata") == 180.0
    assert rules.swr("www.example.org", "landing") == 5.0


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("a.localhost", True),
        ("127.0.0.2", True),
        ("[::1]", True),
        ("192.168.1.4", True),
        ("api.crossref.org", False),
        ("8.8.8.8", False),
    ],
)
def test_local_hosts(host: str, local: bool) -> None:
    assert is_local_host(host) is local


@pytest.mark.parametrize(
    ("cache_control", "expires", "expected"),
    [
        (None, None, "max-age=3600, stale-while-revalidate=60"),
        ("public", None, "public, max-age=3600, stale-while-revalidate=60"),
        ("max-age=10", None, "max-age=10"),  # explicit freshness wins
        ("no-store", None, "no-store"),
        ("no-cache", None, "no-cache"),
        (None, "Thu, 01 Jan 2099 00:00:00 GMT", None),  # Expires is explicit too
    ],
)
def test_assumed_freshness_never_overrides_the_server(
    cache_control: str | None, expires: str | None, expected: str | None
) -> None:
    headers: dict[str, list[str]] = {}
    if cache_control:
        headers["cache-control"] = [cache_control]
    if expires:
        headers["expires"] = [expires]
    out = assume_freshness(headers, ttl_s=3600, swr_s=60)
    assert out.get("cache-control", [None]) == [expected]


def test_ensure_date_adds_one_only_when_missing_or_broken() -> None:
    assert "date" in ensure_date({}, NOW)
    kept = dated(5)
    assert ensure_date(kept, NOW) == kept
    assert ensure_date({"date": ["garbage"]}, NOW)["date"] == [formatdate(NOW, usegmt=True)]


@pytest.mark.parametrize(
    ("headers", "request_cc", "ok"),
    [
        (dated(30, cache_control="max-age=10, stale-while-revalidate=60"), None, True),
        (dated(80, cache_control="max-age=10, stale-while-revalidate=60"), None, False),
        (dated(30, cache_control="max-age=10"), None, False),
        (
            dated(30, cache_control="max-age=10, stale-while-revalidate=60, must-revalidate"),
            None,
            False,
        ),
        (dated(30, cache_control="max-age=10, stale-while-revalidate=60"), "no-cache", False),
    ],
    ids=["in-window", "past-window", "no-swr", "must-revalidate", "request-no-cache"],
)
def test_stale_while_revalidate_window(
    headers: dict[str, list[str]], request_cc: str | None, ok: bool
) -> None:
    assert serve_stale(headers, NOW, request_cache_control=request_cc) is ok


def test_freshness_lifetime_from_max_age_or_expires() -> None:
    assert freshness_lifetime({"cache-control": ["max-age=5"]}) == 5
    assert freshness_lifetime(dated(0, expires=formatdate(NOW + 60, usegmt=True))) == 60
    assert freshness_lifetime({"expires": ["0"]}) == 0, "an invalid Expires is already expired"
    assert freshness_lifetime({}) is None


@pytest.mark.parametrize(
    ("status", "headers", "refused"),
    [
        (200, {"content-type": ["application/json"]}, None),
        (200, {"content-type": ["text/html; charset=utf-8"]}, None),
        (200, {}, None),
        (301, {"location": ["/x"], "content-type": ["application/pdf"]}, None),
        (404, {"content-type": ["application/json"]}, None),
        (429, {"cache-control": ["max-age=60"]}, "status 429"),
        (503, {"cache-control": ["max-age=60"]}, "status 503"),
        (500, {}, "status 500"),
        (403, {}, "status 403"),
        (200, {"cf-mitigated": ["challenge"]}, "challenge"),
        (200, {"content-type": ["application/pdf"]}, "content-type application/pdf"),
        (200, {"content-length": ["5000"]}, "too large"),
        (200, {"vary": ["Accept, Authorization"]}, "varies on a credential"),
    ],
)
def test_admission_by_status_and_headers(
    status: int, headers: dict[str, list[str]], refused: str | None
) -> None:
    assert refusal(status, headers, max_bytes=4096) == refused


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b'{"ok": true}', None),
        (b"<html><body>An article</body></html>", None),
        (b"%PDF-1.7\n...\n%%EOF", "pdf body"),
        (b"<!DOCTYPE html><html><title>Just a moment...</title></html>", "challenge body"),
        (b"<html><body><div class='g-recaptcha'></div></body></html>", "challenge body"),
    ],
)
def test_admission_by_body(body: bytes, refused: str | None) -> None:
    assert body_refusal(body) == refused


def test_vary_compares_the_named_request_headers() -> None:
    stored = {"accept": ["application/json"]}
    assert vary_matches({"vary": ["Accept"]}, stored, {"accept": ["application/json"]})
    assert not vary_matches({"vary": ["Accept"]}, stored, {"accept": ["text/xml"]})
    assert not vary_matches({"vary": ["*"]}, stored, stored)
    assert vary_matches({}, stored, {})


def test_keys_ignore_credentials_and_parameter_order() -> None:
    a = cache_url("https://API.example.org/w?b=2&api_key=K1&a=1&mailto=me@x.org")
    b = cache_url("https://api.example.org/w?a=1&b=2&email=you@y.org&api_key=K2")
    assert a == b == "https://api.example.org/w?a=1&b=2"
    assert cache_key("GET", a) == cache_key("get", b)
    assert cache_key("GET", a) != cache_key("GET", cache_url("https://api.example.org/w?a=2"))
    assert "s3cr3t-value" not in cache_url("https://h/p/s3cr3t-value?x=1", ("s3cr3t-value",))


def test_stored_headers_carry_no_credential() -> None:
    request = clean_request_headers(
        [
            ("Authorization", "Bearer T"),
            ("X-Api-Key", "K"),
            ("Cookie", "s=1"),
            ("User-Agent", "oafetch/1 (+u; mailto:me@x.org)"),
            ("If-None-Match", '"e"'),
            ("Accept", "application/json"),
        ],
        ("K",),
    )
    assert request == {
        "user-agent": ["oafetch/1 (+u; mailto:REDACTED)"],
        "accept": ["application/json"],
    }
    response = clean_response_headers(
        [("Set-Cookie", "s=1"), ("Content-Type", "text/html"), ("X-Echo", "key=sk-0123")],
        ("sk-0123",),
    )
    assert response == {"content-type": ["text/html"], "x-echo": ["key=REDACTED"]}
    assert scrub_body(b'{"k": "sk-0123", "e": "me%40x.org"}', ("sk-0123", "me@x.org")) == (
        b'{"k": "REDACTED", "e": "REDACTED"}'
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("12h", 43200.0),
        ("7d", 7 * DAY),
        ("1w", 7 * DAY),
        ("1d12h", 1.5 * DAY),
        ("1.5h", 5400.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert CacheConfig.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "7 days", "-1", "1d1", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        CacheConfig.parse_duration(text)


def test_cache_config_from_toml_and_its_errors() -> None:
    config = Config(
        cache={
            "ttl_s": {"API.Crossref.org/metadata": "1d", "archive.org": 60},
            "stale_while_revalidate_s": 30,
            "default_ttl_s": "12h",
            "dir": "~/somewhere",
        }
    )
    assert config.cache.ttl_s == {"api.crossref.org/metadata": DAY, "archive.org": 60.0}
    assert config.cache.stale_while_revalidate_s == {"*": 30.0}
    assert config.cache.default_ttl_s == 43200.0
    assert config.cache.dir is not None and "~" not in str(config.cache.dir)
    with pytest.raises(ConfigError, match=r"cache.ttl_s: key 'x/pdf'"):
        Config.load(None, cache={"ttl_s": {"x/pdf": 1}})
    with pytest.raises(ConfigError, match=r"cache.default_ttl_s: must be a duration"):
        Config.load(None, cache={"default_ttl_s": "forever"})


@pytest.mark.parametrize(
    ("headers", "worth"),
    [
        ({"cache-control": ["max-age=60"]}, True),
        ({"cache-control": ["max-age=0"]}, False),
        ({"cache-control": ["max-age=0"], "etag": ['"x"']}, True),
        ({"cache-control": ["max-age=0, stale-while-revalidate=30"]}, True),
        ({"cache-control": ["no-cache"], "last-modified": ["Mon, 01 Jan 2024 00:00:00 GMT"]}, True),
        ({}, False),
    ],
)
def test_an_answer_stale_at_once_without_validators_is_not_worth_storing(
    headers: dict[str, list[str]], worth: bool
) -> None:
    assert worth_storing(headers) is worth
