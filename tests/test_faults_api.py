"""Every API answering garbage: invalid JSON, wrong shapes, invalid or hostile XML, HTML error
pages. Each resolver (``oafetch.resolvers.sources.ALL`` + the landing page) has every endpoint
pointed at one loopback server; whatever it answers, a resolver either returns well-formed
candidates or raises a :class:`FetchError` whose reason says the source answered badly — never
any other exception (which the orchestrator would have to hide as an internal error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from faults import CatchAll, quick_loopback
from loopback import Handler, Loopback
from oafetch.errors import FetchError
from oafetch.http.client import HttpClient
from oafetch.resolvers.base import Resolver, WorkIds
from oafetch.resolvers.common import is_http_url
from oafetch.resolvers.registry import build_resolvers, resolver_classes
from oafetch.tokens import Reason
from oafetch.works import Work, parse_work

# What a garbage answer may end as: the source answered unusably (or said "not found").
ALLOWED = {Reason.BAD_RESPONSE, Reason.NOT_FOUND, Reason.BAD_REQUEST, Reason.POLICY_SIZE}

WRONG_TYPES = {
    # every field a resolver reads, with the wrong type
    "best_oa_location": 5,
    "oa_locations": "x",
    "locations": {"a": 1},
    "open_access": [],
    "results": [1, None, "a", {"id": []}],
    "message": {"link": 5, "DOI": 7},
    "data": [None, 3],
    "externalIds": 7,
    "openAccessPdf": "x",
    "hits": {"hits": [{"files": 3}, None]},
    "response": {"docs": [None, {"files_s": 5}]},
    "records": [5, {"pmcid": []}],
    "resultList": {"result": "x"},
    "files": {"key": 1},
    "links": [],
    "status": 200,
    "archived_snapshots": {"closest": "x"},
    "id": ["W1"],
    "doi": 10,
    "ids": "none",
    "bibjson": {"link": "x"},
    "fullTextUrlList": {"fullTextUrl": [5]},
    "downloadUrl": 9,
    "attributes": None,
    "relationships": {"primary_file": 3},
}

GARBAGE: dict[str, tuple[bytes, str]] = {
    "invalid json": (b"{not json", "application/json"),
    "empty body": (b"", "application/json"),
    "null": (b"null", "application/json"),
    "a list": (b"[]", "application/json"),
    "a string": (b'"string"', "application/json"),
    "a number": (b"1e999999", "application/json"),
    "NaN fields": (b'{"results": NaN, "best_oa_location": Infinity}', "application/json"),
    "error body": (b'{"error": "internal", "message": "boom"}', "application/json"),
    "wrong types": (json.dumps(WRONG_TYPES).encode(), "application/json"),
    "deeply nested json": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "not utf-8": (b"\xff\xfe\x00{\x00}", "application/json"),
    "html error page": (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "invalid xml": (b"<feed><entry>unclosed", "application/atom+xml"),
    "wrong xml": (
        b"<?xml version='1.0'?><html><entry><id>5</id></entry></html>",
        "application/xml",
    ),
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(
            f'<!ENTITY {c} "{("&" + p + ";") * 10}">'.encode()
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + b"]><OA><records>&i;</records></OA>",
        "application/xml",
    ),
    "external entity": (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<OA><records><record id='PMC1'><link format='pdf' href='&e;'/></record></records></OA>",
        "application/xml",
    ),
}

# Works that make every source apply (OSF, Zenodo, figshare and arXiv read special DOIs).
PROBES = [
    (
        "10.1234/abc.def",
        {
            "pmcid": "PMC123",
            "pmid": "123",
            "arxiv": "2101.00001",
            "openalex": "W123",
            "urls": ["http://127.0.0.1:1/x.pdf"],
        },
    ),
    ("10.5281/zenodo.12345", {}),
    ("10.6084/m9.figshare.12345", {}),
    ("10.31219/osf.io/abcde", {}),
    ("arXiv:2101.00001", {}),
    ("PMC4567", {}),
    ("http://127.0.0.1:1/paper.pdf", {}),
]


@pytest.fixture
def server() -> Iterator[Loopback]:
    """conftest's loopback server, stopped faster (see ``faults.quick_loopback``)."""
    yield from quick_loopback()


def _settings(base: str) -> dict[str, Any]:
    resolvers: dict[str, Any] = {}
    for name, cls in resolver_classes().items():
        settings: dict[str, Any] = {key: base for key in cls.endpoints}
        settings["base_url"] = base
        if cls.credential == "api_key":
            settings["api_key"] = "test-key"
        if cls.credential == "email":
            settings["email"] = "tester@oafetch.dev"
        if not cls.default_enabled:  # a billed source is on only when asked for
            settings["enabled"] = True
        resolvers[name] = settings
    return resolvers


def _ids(work: Work, extra: dict[str, Any]) -> WorkIds:
    ids = WorkIds.of(work)
    for key, value in extra.items():
        if key == "urls":
            ids.note_urls(value)
        else:
            setattr(ids, key, value)
    return ids


def _ask(resolver: Resolver, http: HttpClient) -> tuple[int, list[str]]:
    """Ask ``resolver`` about every probe that applies; return (how many applied, problems)."""
    applied, problems = 0, []
    for text, extra in PROBES:
        work = parse_work(text)
        ids = _ids(work, extra)
        if not resolver.applies_to(work, ids):
            continue
        applied += 1
        try:
            found = resolver.candidates(work, ids, http)
        except FetchError as exc:
            if exc.reason not in ALLOWED:
                problems.append(f"{resolver.name}/{text}: {exc.reason}: {exc}")
            continue
        except Exception as exc:  # a crash: exactly what this test is looking for
            problems.append(f"{resolver.name}/{text}: CRASH {type(exc).__name__}: {exc}"[:300])
            continue
        bad = [c.url for c in found if not is_http_url(c.url)]
        if bad:
            problems.append(f"{resolver.name}/{text}: non-http candidates {bad}")
    return applied, problems


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_every_resolver_survives_garbage_from_its_api(
    server: Loopback, make_config: Any, kind: str
) -> None:
    body, ctype = GARBAGE[kind]

    def answer(h: Handler) -> None:
        h.reply(200, body, ctype)

    server.routes = CatchAll(answer)
    config = make_config(
        resolvers=_settings(server.base), retry={"attempts": 1}, robots={"enabled": False}
    )
    resolvers, notes = build_resolvers(config)
    assert not notes and set(resolvers) == set(resolver_classes())
    problems: list[str] = []
    with HttpClient(config) as http:
        for resolver in resolvers.values():
            applied, found = _ask(resolver, http)
            assert applied, f"{resolver.name} was never asked"
            problems += found
    assert not problems, "\n".join(problems)
    assert server.log, "the garbage was really served"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 500, 503])
def test_every_resolver_turns_an_error_status_into_a_reason(
    server: Loopback, make_config: Any, status: int
) -> None:
    server.routes = CatchAll(lambda h: h.reply(status, b'{"error": "no"}', "application/json"))
    config = make_config(
        resolvers=_settings(server.base),
        robots={"enabled": False},
        retry={"attempts": 2, "backoff_initial_s": 0.0},
        breaker={"enabled": False},
    )
    resolvers, _ = build_resolvers(config)
    crashes: list[str] = []
    with HttpClient(config) as http:
        for resolver in resolvers.values():
            for text, extra in PROBES:
                work = parse_work(text)
                ids = _ids(work, extra)
                if not resolver.applies_to(work, ids):
                    continue
                try:
                    resolver.candidates(work, ids, http)
                except FetchError as exc:
                    assert exc.reason is not Reason.DOWNLOAD_ERROR, f"{resolver.name}: {exc}"
                except Exception as exc:
                    crashes.append(f"{resolver.name}: {type(exc).__name__}: {exc}")
    assert not crashes, crashes
