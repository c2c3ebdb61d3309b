"""The HTTP cache stage on loopback: hits spend nothing below the cache, revalidation, admission,
credentials, purge and stats, and the two-run batch the cache exists for."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from loopback import Handler, Loopback, pdf_bytes
from oafetch import Downloader, Outcome, cache_cli
from oafetch.config import Config
from oafetch.errors import ConfigError
from oafetch.http.cache import DB_NAME, build_cache
from oafetch.http.cache_db import purge, read_entries, stats
from oafetch.http.client import HttpClient
from oafetch.resolvers.unpaywall import UnpaywallResolver
from oafetch.telemetry import names
from oafetch.telemetry.runtime import Telemetry
from oafetch.tokens import Role

EMAIL = "tester@oafetch.test"  # the conftest's mailto
API_KEY = "sk-live-7c1d2e3f4a5b6c7d"
BEARER = "tok-bearer-0a9b8c7d6e5f"
JSON = "application/json"


# -- helpers ------------------------------------------------------------------------------------
def _serve(host: str = "127.0.0.1") -> Loopback:
    """A loopback server that shuts down in milliseconds (the shared one polls every 0.5 s)."""
    box = Loopback(ThreadingHTTPServer((host, 0), Handler))
    box.server.daemon_threads = True
    box.server.box = box  # type: ignore[attr-defined]
    threading.Thread(target=box.server.serve_forever, args=(0.02,), daemon=True).start()
    return box


def _stop(box: Loopback) -> None:
    box.server.shutdown()
    box.server.server_close()


@pytest.fixture
def server() -> Iterator[Loopback]:
    box = _serve()
    yield box
    _stop(box)


def cache_config(make_config: Any, tmp_path: Path, **overrides: Any) -> Config:
    """Cache on in ``tmp_path/cache``; loopback answers without headers fresh for an hour."""
    cache = {"enabled": True, "dir": tmp_path / "cache", "ttl_s": {"127.0.0.1": "1h"}}
    cache.update(overrides.pop("cache", {}))
    return make_config(cache=cache, **overrides)  # type: ignore[no-any-return]


def client(config: Config, telemetry: Telemetry | None = None, **kwargs: Any) -> HttpClient:
    handle = telemetry or Telemetry.noop()
    return HttpClient(config, handle, cache=build_cache(config, handle), **kwargs)


def served(server: Loopback, path: str) -> int:
    return len(server.hits(path))


def header(entry: Any, name: str) -> str | None:
    for key, value in entry.headers.items():
        if key.lower() == name:
            return str(value)
    return None


def db_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.glob(DB_NAME + "*") if p.is_file())


def json_route(body: Any, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode()
    return lambda h: h.reply(200, data, JSON, headers)


def etag_route(tag: str, body: bytes, cache_control: str = "max-age=0") -> Any:
    def route(h: Handler) -> None:
        if h.headers.get("If-None-Match") == tag:
            h.reply(304, b"", JSON, {"ETag": tag, "Cache-Control": cache_control})
        else:
            h.reply(200, body, JSON, {"ETag": tag, "Cache-Control": cache_control})

    return route


@pytest.fixture
def spans() -> Iterator[tuple[Telemetry, TracerProvider, MeterProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider(shutdown_on_exit=False)
    yield Telemetry.from_providers(provider, meters), provider, meters, exporter
    provider.shutdown()
    meters.shutdown()


# -- the two-run promise ------------------------------------------------------------------------
def test_second_run_sends_no_cached_metadata_request_and_spends_no_rate_token(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    for i in range(10):
        server.routes[f"/works/{i}"] = json_route({"id": i})
    config = cache_config(
        make_config, tmp_path, politeness={"enabled": True}, rates={"127.0.0.1": "200/s"}
    )
    urls = [server.url(f"/works/{i}?mailto={EMAIL}") for i in range(10)]
    reservations: list[list[str]] = []

    def spy_on(http: HttpClient) -> list[str]:
        reserved: list[str] = []
        original = http.limiter.reserve

        def spy(host: str, **kw: Any) -> float:
            reserved.append(host)
            return original(host, **kw)

        http.limiter.reserve = spy  # type: ignore[method-assign]
        return reserved

    for _ in range(2):
        with client(config) as http:
            reservations.append(spy_on(http))
            assert [http.get_json(u)["id"] for u in urls] == list(range(10))
    assert len(server.log) == 10, "the second run sent nothing"
    assert len(reservations[0]) == 10 and reservations[1] == [], "a hit spends no rate token"


def test_two_batch_runs_share_the_cache_and_metadata_rows_are_from_cache(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    """Same batch twice, another output dir, one --cache-dir: metadata from the cache, PDFs not."""
    dois = [f"10.1234/cache.{i}" for i in range(8)]
    for i, doi in enumerate(dois):
        pdf = f"/pdf/{i}.pdf"
        server.routes[f"/v2/{doi}"] = json_route(
            {
                "doi": doi,
                "is_oa": True,
                "best_oa_location": {"url_for_pdf": server.url(pdf), "host_type": "repository"},
                "oa_locations": [],
            }
        )
        body = pdf_bytes(2000, seed=i)
        server.routes[pdf] = lambda h, body=body: h.reply(200, body, "application/pdf")
    server.routes["/robots.txt"] = lambda h: h.reply(
        200, b"User-agent: *\nAllow: /\n", "text/plain"
    )

    def run(out: str) -> Path:
        config = cache_config(
            make_config,
            tmp_path,
            out_dir=tmp_path / out,
            telemetry={"enabled": True, "jsonl": False},
            politeness={"enabled": True},
            rates={"127.0.0.1": "500/s"},
            resolvers={"unpaywall": {"base_url": server.base, "email": EMAIL}},
            fallback={"tiers": [{"name": "direct", "sources": ["unpaywall"]}]},
        )
        resolver = UnpaywallResolver(config.resolver("unpaywall"), config)
        with Downloader(config, resolvers={"unpaywall": resolver}) as dl:
            results = list(dl.run(dois))
        assert all(r.outcome is Outcome.SUCCESS for r in results), results
        return tmp_path / out / "telemetry.sqlite"

    run("first")
    api_before = sum(1 for s in server.log if s.path.startswith("/v2/"))
    pdfs_before = sum(1 for s in server.log if s.path.startswith("/pdf/"))
    second = run("second")
    assert sum(1 for s in server.log if s.path.startswith("/v2/")) == api_before == len(dois)
    assert sum(1 for s in server.log if s.path.startswith("/pdf/")) == 2 * pdfs_before, (
        "artifacts are never cached"
    )
    with closing(sqlite3.connect(second)) as db:
        rows = db.execute(
            "SELECT from_cache, revalidated FROM http_events WHERE role = 'metadata'"
        ).fetchall()
        waits = db.execute("SELECT COUNT(*) FROM rate_events WHERE role = 'metadata'").fetchone()[0]
    assert len(rows) == len(dois)
    assert sum(1 for fc, _ in rows if fc) / len(rows) >= 0.9
    assert waits == 0, "cached metadata spent no rate-limit token"


# -- RFC 9111 behaviour -------------------------------------------------------------------------
def test_etag_with_max_age_0_is_revalidated_and_a_304_counts_as_revalidated(
    server: Loopback, make_config: Any, tmp_path: Path, spans: Any
) -> None:
    telemetry, provider, meters, exporter = spans
    server.routes["/e"] = etag_route('"v1"', b'{"v": 1}')
    config = cache_config(make_config, tmp_path)
    with client(config, telemetry, tracer_provider=provider, meter_provider=meters) as http:
        assert http.get_json(server.url("/e")) == {"v": 1}
        exporter.clear()
        with http.stream(server.url("/e"), role=Role.METADATA) as response:
            assert response.read() == b'{"v": 1}', "the stored body answers the 304"
            assert response.extensions["caching"]["revalidated"] is True
            assert response.request.extensions["oafetch"]["cache_revalidated"] is True
    (first, second) = server.hits("/e")
    assert "If-None-Match" not in first.headers
    assert second.headers.get("if-none-match", second.headers.get("If-None-Match")) == '"v1"'
    finished = exporter.get_finished_spans()
    (span,) = [s for s in finished if s.kind is SpanKind.CLIENT]
    attrs = span.attributes or {}
    assert attrs[names.REVALIDATED] is True and attrs[names.FROM_CACHE] is False
    assert attrs["http.response.status_code"] == 304
    events = [e for s in finished for e in s.events if e.name == names.EVENT_HTTP]
    assert events == [], "a revalidation is a network request, not a cache hit"


def test_a_hit_makes_no_client_span_but_one_from_cache_http_event(
    server: Loopback, make_config: Any, tmp_path: Path, spans: Any
) -> None:
    telemetry, provider, meters, exporter = spans
    server.routes["/h"] = json_route({"h": 1}, {"Cache-Control": "max-age=600"})
    config = cache_config(make_config, tmp_path)
    with client(config, telemetry, tracer_provider=provider, meter_provider=meters) as http:
        http.get_json(server.url("/h"))
        exporter.clear()
        with telemetry.tracer.start_as_current_span("work"):
            assert http.get_json(server.url("/h")) == {"h": 1}
    finished = exporter.get_finished_spans()
    assert not [s for s in finished if s.kind is SpanKind.CLIENT]
    (event,) = [e for s in finished for e in s.events if e.name == names.EVENT_HTTP]
    attrs = event.attributes or {}
    assert attrs[names.FROM_CACHE] is True and attrs[names.STALE] is False
    assert attrs[names.ROLE] == "metadata" and attrs[names.HTTP_RESPONSE_STATUS_CODE] == 200
    assert attrs[names.HOST] == "127.0.0.1" and len(str(attrs[names.URL_HASH])) == 16


def test_server_cache_headers_win_over_the_configured_ttl(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/nostore"] = json_route({"n": 1}, {"Cache-Control": "no-store"})
    server.routes["/nocache"] = json_route({"n": 2}, {"Cache-Control": "no-cache"})
    with client(cache_config(make_config, tmp_path)) as http:
        for _ in range(2):
            http.get_json(server.url("/nostore"))
            http.get_json(server.url("/nocache"))
    assert served(server, "/nostore") == 2 and served(server, "/nocache") == 2


def test_stale_while_revalidate_serves_stale_and_revalidates_in_the_background(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/s"] = etag_route('"s1"', b'{"s": 1}', cache_control="")
    config = cache_config(
        make_config,
        tmp_path,
        cache={"ttl_s": {"127.0.0.1": 0}, "stale_while_revalidate_s": {"127.0.0.1": "10m"}},
    )
    with client(config) as http:
        http.get_json(server.url("/s"))
        with http.stream(server.url("/s"), role=Role.METADATA) as response:
            assert response.read() == b'{"s": 1}'
            assert response.extensions["caching"]["stale"] is True
        deadline = time.monotonic() + 5
        while served(server, "/s") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    (_, background) = server.hits("/s")
    assert {k.lower(): v for k, v in background.headers.items()}["if-none-match"] == '"s1"'


def test_loopback_answers_without_headers_are_not_assumed_fresh(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    """A development server's answers change between runs: no TTL unless a rule names it."""
    server.routes["/dev"] = json_route({"d": 1})
    config = make_config(cache={"enabled": True, "dir": tmp_path / "cache"})
    with client(config) as http:
        http.get_json(server.url("/dev"))
        http.get_json(server.url("/dev"))
    assert served(server, "/dev") == 2


def test_a_gzip_answer_is_stored_decoded_and_served_intact(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    payload = json.dumps({"title": "x" * 5000}).encode()
    server.routes["/gz"] = lambda h: h.reply(
        200, gzip.compress(payload), JSON, {"Content-Encoding": "gzip"}
    )
    with client(cache_config(make_config, tmp_path)) as http:
        assert http.get_json(server.url("/gz")) == json.loads(payload)
        assert http.get_json(server.url("/gz")) == json.loads(payload)
    assert served(server, "/gz") == 1


# -- admission ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (429, {"Retry-After": "0", "Cache-Control": "max-age=600"}, b'{"e": "slow down"}'),
        (503, {"Cache-Control": "max-age=600"}, b'{"e": "down"}'),
        (500, {}, b"oops"),
        (403, {"cf-mitigated": "challenge", "Cache-Control": "max-age=600"}, b"<html></html>"),
        (
            200,
            {"Cache-Control": "max-age=600"},
            b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
            b"<body>cf_chl_opt</body></html>",
        ),
    ],
    ids=["429", "503", "500", "cf-mitigated", "challenge-body"],
)
def test_throttling_errors_and_challenges_are_never_served_from_the_cache(
    server: Loopback,
    make_config: Any,
    tmp_path: Path,
    status: int,
    headers: dict[str, str],
    body: bytes,
) -> None:
    ctype = "text/html" if body.startswith(b"<") else JSON
    server.routes["/bad"] = lambda h: h.reply(status, body, ctype, headers)
    config = cache_config(make_config, tmp_path, retry={"attempts": 1})
    with client(config) as http:
        for _ in range(2):
            with http.stream(server.url("/bad"), role=Role.LANDING) as response:
                assert response.status_code == status
                assert response.read() == body
    assert served(server, "/bad") == 2
    stored = [e.url for e in read_entries(tmp_path / "cache" / DB_NAME)]
    assert stored == [server.url("/robots.txt")], "only robots.txt was stored"


def test_a_5xx_while_revalidating_keeps_the_stored_answer(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    answers = iter([(200, b'{"ok": 1}'), (503, b"down"), (304, b"")])

    def route(h: Handler) -> None:
        status, body = next(answers)
        h.reply(status, body, JSON, {"ETag": '"k"', "Cache-Control": "max-age=0"})

    server.routes["/flap"] = route
    with client(cache_config(make_config, tmp_path, retry={"attempts": 1})) as http:
        assert http.get_json(server.url("/flap")) == {"ok": 1}
        with http.stream(server.url("/flap"), role=Role.METADATA) as response:
            assert response.status_code == 503
        assert http.get_json(server.url("/flap")) == {"ok": 1}, "revalidated after the 503"
    assert served(server, "/flap") == 3


def test_artifacts_are_never_cached(server: Loopback, make_config: Any, tmp_path: Path) -> None:
    body = pdf_bytes(3000)
    server.routes["/a.pdf"] = lambda h: h.reply(
        200, body, "application/pdf", {"Cache-Control": "max-age=600"}
    )
    server.routes["/landing"] = lambda h: h.reply(
        200,
        body,
        "text/html",
        {"Cache-Control": "max-age=600"},  # a PDF behind a page URL
    )
    with client(cache_config(make_config, tmp_path)) as http:
        for _ in range(2):
            with http.stream(server.url("/a.pdf"), role=Role.ARTIFACT) as response:
                assert response.read() == body
                assert response.request.extensions["oafetch"]["cache"] == "bypass"
            with http.stream(server.url("/landing"), role=Role.LANDING) as response:
                assert response.read() == body
    assert served(server, "/a.pdf") == 2 and served(server, "/landing") == 2
    assert [e.url for e in read_entries(tmp_path / "cache" / DB_NAME)] == [
        server.url("/robots.txt")
    ], "only robots.txt was stored"


def test_a_body_over_the_entry_limit_passes_through_uncached(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    big = json.dumps({"x": "y" * 4000}).encode()
    server.routes["/big"] = lambda h: h.reply(200, big, JSON)
    config = cache_config(make_config, tmp_path, cache={"max_entry_bytes": 1024})
    with client(config) as http:
        assert http.get_json(server.url("/big"))["x"] == "y" * 4000
        assert http.get_json(server.url("/big"))["x"] == "y" * 4000
    assert served(server, "/big") == 2


def test_an_answer_varying_on_authorization_is_not_stored(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/v"] = json_route({"v": 1}, {"Vary": "Authorization"})
    with client(cache_config(make_config, tmp_path)) as http:
        for token in ("a", "b"):
            http.get_json(server.url("/v"), headers={"Authorization": f"Bearer {token}-0123"})
    assert served(server, "/v") == 2


# -- credentials --------------------------------------------------------------------------------
def test_no_credential_is_stored_and_credentials_do_not_split_the_key(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/q"] = json_route({"echo": EMAIL, "key": API_KEY})  # an API that echoes
    config = cache_config(make_config, tmp_path, resolvers={"core": {"api_key": API_KEY}})
    answers = []
    with client(config) as http:
        for key in (API_KEY, API_KEY[::-1]):
            answers.append(
                http.get_json(
                    server.url(f"/q?q=x&api_key={key}&email={EMAIL}&mailto={EMAIL}"),
                    headers={
                        "Authorization": f"Bearer {BEARER}",
                        "X-Api-Key": API_KEY,
                        "Cookie": f"session={BEARER}",
                    },
                )
            )
    assert answers[0] == {"echo": EMAIL, "key": API_KEY}, "a miss serves the real answer"
    assert answers[1] == {"echo": "REDACTED", "key": "REDACTED"}, "echoed secrets are scrubbed"
    assert served(server, "/q") == 1, "api_key/email/mailto and auth headers are not in the key"
    sent = server.hits("/q")[0]
    assert API_KEY in sent.path and sent.headers["Authorization"] == f"Bearer {BEARER}"
    raw = db_bytes(tmp_path / "cache")
    assert raw, "the database exists"
    for secret in (API_KEY, API_KEY[::-1], EMAIL, BEARER, "tester%40oafetch.test"):
        assert secret.encode() not in raw, secret
    (entry,) = read_entries(tmp_path / "cache" / DB_NAME)
    assert entry.url == server.url("/q?q=x")


# -- storage shared between runs, threads and processes ------------------------------------------
def test_clients_in_threads_and_another_process_share_one_database(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    for i in range(20):
        server.routes[f"/p/{i}"] = json_route({"i": i})
    config = cache_config(make_config, tmp_path)
    script = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from pathlib import Path\n"
        "from conftest import fast_config\n"
        "from oafetch.http.client import HttpClient\n"
        "from oafetch.http.cache import build_cache\n"
        "from oafetch.telemetry.runtime import Telemetry\n"
        f"c = fast_config(Path({str(tmp_path / 'o2')!r}), cache={{'enabled': True, "
        f"'dir': {str(tmp_path / 'cache')!r}, 'ttl_s': {{'127.0.0.1': 3600}}}})\n"
        "with HttpClient(c, cache=build_cache(c, Telemetry.noop())) as h:\n"
        f"    for i in range(20): assert h.get_json({server.base!r} + f'/p/{{i}}')['i'] == i\n"
    )
    other = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            with client(config) as http:
                for i in range(20):
                    j = (i + offset) % 20
                    assert http.get_json(server.url(f"/p/{j}"))["i"] == j
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 7,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other.wait(timeout=60) == 0
    assert not errors, errors
    assert stats(tmp_path / "cache" / DB_NAME).entries >= 20
    before = len(server.log)
    with client(config) as http:
        for i in range(20):
            http.get_json(server.url(f"/p/{i}"))
    assert len(server.log) == before, "every answer is in the shared database"


# -- purge and stats ----------------------------------------------------------------------------
@pytest.fixture
def two_hosts(make_config: Any, tmp_path: Path) -> Iterator[tuple[Loopback, Loopback, Config]]:
    one, two = _serve("127.0.0.1"), _serve("127.0.0.2")
    for box in (one, two):
        for i in range(3):
            box.routes[f"/m/{i}"] = json_route({"i": i}, {"Cache-Control": "max-age=3600"})
    config = cache_config(make_config, tmp_path)
    with client(config) as http:
        for box in (one, two):
            for i in range(3):
                http.get_json(box.url(f"/m/{i}"))
    yield one, two, config
    for box in (one, two):
        _stop(box)


def test_stats_reports_entries_sizes_hosts_and_ages(
    two_hosts: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = str(tmp_path / "cache")
    assert cache_cli.main(["stats", "--cache-dir", cache_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["entries"] == 6 and report["hosts"] == {"127.0.0.1": 3, "127.0.0.2": 3}
    assert report["roles"] == {"metadata": 6}
    assert report["body_bytes"] == 6 * len(b'{"i": 0}') and report["file_bytes"] > 0
    assert report["oldest"] <= report["newest"] <= time.time()
    assert cache_cli.main(["stats", "--cache-dir", cache_dir]) == 0
    text = capsys.readouterr().out
    assert "entries: 6" in text and "127.0.0.2  3" in text


def test_purge_by_host_then_by_age_then_everything(
    two_hosts: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, _, config = two_hosts
    cache_dir = str(tmp_path / "cache")
    db = tmp_path / "cache" / DB_NAME
    assert cache_cli.main(["purge", "--cache-dir", cache_dir, "--host", "127.0.0.2"]) == 0
    assert "purged 3 entries" in capsys.readouterr().out
    assert {e.host for e in read_entries(db)} == {"127.0.0.1"}
    assert purge(db, older_than_s=3600) == 0, "nothing is an hour old"
    assert cache_cli.main(["purge", "--cache-dir", cache_dir, "--older-than", "1h"]) == 0
    assert stats(db).entries == 3
    assert purge(db, older_than_s=60, now=time.time() + 120) == 3, "two minutes later"
    with client(config) as http:
        http.get_json(one.url("/m/0"))  # purged: fetched again, stored again
    assert len(one.hits("/m/0")) == 2
    assert cache_cli.main(["purge", "--cache-dir", cache_dir]) == 0
    assert stats(db).entries == 0
    with client(config) as http:
        http.get_json(one.url("/m/0"))
    assert len(one.hits("/m/0")) == 3, "an empty cache answers nothing"


def test_cache_cli_errors_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cache_cli.main(["purge", "--cache-dir", str(tmp_path), "--older-than", "soon"]) == 2
    assert "--older-than" in capsys.readouterr().err
    (tmp_path / DB_NAME).write_bytes(b"this is not a database at all" * 100)
    assert cache_cli.main(["stats", "--cache-dir", str(tmp_path)]) == 2
    assert "not an oafetch cache database" in capsys.readouterr().err
    assert cache_cli.main(["stats", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "no cache yet" in capsys.readouterr().out


def test_the_oafetch_command_has_the_cache_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from oafetch.cli import main

    assert main(["cache", "stats", "--cache-dir", str(tmp_path)]) == 0
    assert main(["cache", "purge", "--cache-dir", str(tmp_path), "--older-than", "7d"]) == 0
    assert "purged 0 entries" in capsys.readouterr().out


# -- configuration ------------------------------------------------------------------------------
def test_no_cache_and_cache_dir_flags(tmp_path: Path) -> None:
    import argparse

    from oafetch.cli import load_config

    args = argparse.Namespace(no_cache=True, cache_dir=None)
    config = load_config(args, out_dir=tmp_path)
    assert build_cache(config, Telemetry.noop()) is None
    args = argparse.Namespace(no_cache=False, cache_dir=tmp_path / "c")
    config = load_config(args, out_dir=tmp_path)
    assert config.cache.dir == tmp_path / "c" and build_cache(config, Telemetry.noop())
    assert (tmp_path / "c" / DB_NAME).is_file()


def test_an_unusable_cache_dir_is_a_clear_config_error(make_config: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"cache\.dir"):
        build_cache(make_config(cache={"enabled": True, "dir": blocker / "sub"}), Telemetry.noop())
    (tmp_path / "bad").mkdir()
    with closing(sqlite3.connect(tmp_path / "bad" / DB_NAME)) as db:
        db.execute("CREATE TABLE entries (x)")
    with pytest.raises(ConfigError, match=r"cache\.dir"):
        build_cache(make_config(cache={"enabled": True, "dir": tmp_path / "bad"}), Telemetry.noop())
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / DB_NAME).write_bytes(b"not a database" * 1000)
    with pytest.raises(ConfigError, match="not a database"):
        config = make_config(cache={"enabled": True, "dir": tmp_path / "garbage"})
        build_cache(config, Telemetry.noop())


def test_a_request_can_opt_out(server: Loopback, make_config: Any, tmp_path: Path) -> None:
    server.routes["/o"] = json_route({"o": 1}, {"Cache-Control": "max-age=600"})
    with client(cache_config(make_config, tmp_path)) as http:
        for _ in range(2):
            request = http._client.build_request(
                "GET",
                server.url("/o"),
                extensions={"oafetch": {"role": "metadata", "no_cache": True}},
            )
            assert http._client.send(request).json() == {"o": 1}
    assert served(server, "/o") == 2


def test_robots_txt_is_cached_between_clients(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/robots.txt"] = lambda h: h.reply(
        200, b"User-agent: *\nAllow: /\n", "text/plain"
    )
    server.routes["/page"] = lambda h: h.reply(200, b"<html><body>p</body></html>", "text/html")
    for _ in range(2):
        with client(cache_config(make_config, tmp_path)) as http:
            http.get_text(server.url("/page"), role=Role.LANDING)
    assert served(server, "/robots.txt") == 1 and served(server, "/page") == 1
    roles = {e.role for e in read_entries(tmp_path / "cache" / DB_NAME)}
    assert roles == {"robots", "landing"}


def test_redirect_hops_are_cached_each(server: Loopback, make_config: Any, tmp_path: Path) -> None:
    server.routes["/doi"] = lambda h: h.reply(302, b"", "text/html", {"Location": "/article"})
    server.routes["/article"] = lambda h: h.reply(200, b"<html>a</html>", "text/html")
    server.routes["/robots.txt"] = lambda h: h.reply(404, b"", "text/plain")
    with client(cache_config(make_config, tmp_path)) as http:
        for _ in range(2):
            assert http.get_text(server.url("/doi"), role=Role.LANDING).text == "<html>a</html>"
    assert served(server, "/doi") == 1 and served(server, "/article") == 1


def test_httpx_sees_an_ordinary_response_on_a_hit(
    server: Loopback, make_config: Any, tmp_path: Path
) -> None:
    server.routes["/r"] = json_route({"r": 1}, {"Cache-Control": "max-age=600", "X-Custom": "1"})
    with client(cache_config(make_config, tmp_path)) as http:
        http.get_json(server.url("/r"))
        with http.stream(server.url("/r"), role=Role.METADATA) as response:
            assert isinstance(response, httpx.Response)
            assert response.headers["x-custom"] == "1" and "age" in response.headers
            response.read()
            assert response.json() == {"r": 1}
            assert response.extensions["caching"]["from_cache"] is True
