"""The httpx instrumentation hooks, driven directly: facts onto the span, never an exception."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.httpx import RequestInfo, ResponseInfo
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from oafetch.telemetry import names
from oafetch.telemetry._attrs import set_valid_attributes
from oafetch.telemetry.httpx_hooks import request_hook, response_hook, strip_query


@pytest.fixture
def spans() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("t"), exporter
    provider.shutdown()


def request(url: str, facts: dict[str, Any] | None, headers: dict[str, str] | None = None) -> Any:
    ext = {"oafetch": facts} if facts is not None else {}
    return RequestInfo(b"GET", httpx.URL(url), httpx.Headers(headers or {}), None, ext)


def response(status: int, headers: dict[str, str] | None = None, **ext: Any) -> Any:
    return ResponseInfo(status, httpx.Headers(headers or {}), httpx.ByteStream(b""), ext)


def run(spans: tuple[Any, InMemorySpanExporter], req: Any, resp: Any | None = None) -> ReadableSpan:
    tracer, exporter = spans
    exporter.clear()
    with tracer.start_as_current_span(
        "GET", kind=SpanKind.CLIENT, attributes={names.URL_FULL: str(req.url)}
    ) as span:
        request_hook(span, req)
        if resp is not None:
            response_hook(span, req, resp)
    (done,) = exporter.get_finished_spans()
    return done


def test_request_facts_land_on_the_span_and_url_is_replaced(spans: Any) -> None:
    facts = {
        "role": "metadata",
        "host": "api.openalex.org",
        "url_hash": "abcdabcdabcdabcd",
        "url_redacted": "https://api.openalex.org/works?api_key=REDACTED",
        "rate_delay_ms": 250,
        "breaker_state": "half-open",
        "retry_count": 0,
        "retry_after_s": None,
    }
    span = run(spans, request("https://api.openalex.org/works?api_key=K", facts))
    attrs = dict(span.attributes or {})
    assert attrs[names.URL_FULL] == "https://api.openalex.org/works?api_key=REDACTED"
    assert attrs[names.ROLE] == "metadata"
    assert attrs[names.RATE_DELAY_MS] == 250.0
    assert attrs[names.BREAKER_STATE] == "half-open"
    assert attrs[names.RETRY_COUNT] == 0
    assert names.HTTP_RESEND_COUNT not in attrs, "resend_count only for an actual resend"
    assert names.RETRY_AFTER_S not in attrs
    assert facts["client_span_id"] == format(span.context.span_id, "016x")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@h.example/a?email=me@x.org&key=1", "https://h.example/a?REDACTED"),
        ("http://127.0.0.1:8080/x.pdf", "http://127.0.0.1:8080/x.pdf"),
        ("https://[::1]:9/p?t=1#frag", "https://[::1]:9/p?REDACTED"),
    ],
)
def test_without_facts_the_query_and_userinfo_are_dropped(
    spans: Any, url: str, expected: str
) -> None:
    assert strip_query(url) == expected
    span = run(spans, request(url, None))
    assert (span.attributes or {})[names.URL_FULL] == expected


RESPONSE_CASES: list[tuple[str, Any, dict[str, str], dict[str, Any]]] = [
    ("200 is a breaker success", response(200), {}, {names.BREAKER_RECORDED: "success"}),
    ("404 is not a breaker failure", response(404), {}, {names.BREAKER_RECORDED: "success"}),
    ("500 is a breaker failure", response(500), {}, {names.BREAKER_RECORDED: "failure"}),
    (
        "a Cloudflare challenge 503 is not a host failure",
        response(503, {"cf-mitigated": "challenge"}),
        {},
        {names.BREAKER_RECORDED: "success"},
    ),
    (
        "hishel 2 flags are read",
        response(200, caching={"from_cache": True, "revalidated": False, "stored": True}),
        {},
        {names.FROM_CACHE: True, names.REVALIDATED: False, names.STALE: False},
    ),
    (
        "hishel 0.x flat flags are read",
        response(200, hishel_from_cache=True, hishel_stale=True),
        {},
        {names.FROM_CACHE: True, names.STALE: True},
    ),
    (
        "a 304 to a conditional request is a revalidation",
        response(304),
        {"If-None-Match": '"v1"'},
        {names.REVALIDATED: True, names.FROM_CACHE: False},
    ),
    ("a bare 304 is not", response(304), {}, {names.REVALIDATED: False}),
]


@pytest.mark.parametrize(
    ("case", "resp", "req_headers", "expected"), RESPONSE_CASES, ids=[c[0] for c in RESPONSE_CASES]
)
def test_response_hook(
    spans: Any, case: str, resp: Any, req_headers: dict[str, str], expected: dict[str, Any]
) -> None:
    facts: dict[str, Any] = {}
    span = run(spans, request("https://h/x", facts, req_headers), resp)
    attrs = dict(span.attributes or {})
    assert {k: attrs.get(k) for k in expected} == expected, case
    assert facts["client_span_id"] == format(span.context.span_id, "016x")


class Broken:
    """An object whose every attribute access raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(name)


def test_hooks_never_raise(spans: Any) -> None:
    tracer, _ = spans
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as span:
        request_hook(span, Broken())
        response_hook(span, Broken(), Broken())
        request_hook(span, request("https://h/", {"retry_count": "three", "role": 5}))
        response_hook(span, None, None)


def test_hooks_skip_non_recording_spans() -> None:
    facts: dict[str, Any] = {}
    span: Span = trace_noop_span()
    request_hook(span, request("https://h/?k=1", facts))
    response_hook(span, request("https://h/", facts), response(500))
    assert facts == {}


def trace_noop_span() -> Span:
    from opentelemetry.trace import INVALID_SPAN

    return INVALID_SPAN


# -- setting already-valid attributes without the SDK's re-validation ------------------------------


def test_set_valid_attributes_matches_set_attributes(spans: Any) -> None:
    """Same result as Span.set_attributes: values, and an existing key moves to the end."""
    tracer, exporter = spans
    attrs: dict[str, AttributeValue] = {
        names.ROLE: "artifact",
        names.RETRY_COUNT: 2,
        names.FROM_CACHE: False,
    }
    results = []
    for setter in ("sdk", "fast"):
        exporter.clear()
        with tracer.start_as_current_span("GET", attributes={"a": 1, names.ROLE: "x", "b": 2}) as s:
            if setter == "sdk":
                s.set_attributes(attrs)
            else:
                set_valid_attributes(s, attrs)
        (done,) = exporter.get_finished_spans()
        results.append(list((done.attributes or {}).items()))
    assert results[0] == results[1]
    assert results[1][-3:] == list(attrs.items())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4"}, {"first": "x", "long": "abcd", "third": "y"}),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "2"}, {"long": "abcdefgh", "third": "y"}),
    ],
)
def test_set_valid_attributes_defers_to_the_sdk_when_limits_apply(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: dict[str, str]
) -> None:
    """A value-length limit still truncates, a full span still evicts, an ended one refuses."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET", attributes={"first": "x"}) as span:
        set_valid_attributes(span, {"long": "abcdefgh", "third": "y"})
    set_valid_attributes(span, {"late": "z"})  # ended: the SDK ignores it (and warns)
    (done,) = exporter.get_finished_spans()
    assert dict(done.attributes or {}) == expected
    provider.shutdown()


def test_set_valid_attributes_on_a_non_sdk_span() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.got: dict[str, Any] = {}

        def set_attributes(self, attributes: dict[str, Any]) -> None:
            self.got.update(attributes)

    span = Recorder()
    set_valid_attributes(span, {names.ROLE: "metadata"})
    assert span.got == {names.ROLE: "metadata"}
