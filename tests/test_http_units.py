"""Pure parts of the HTTP layer: Retry-After, backoff, the retry loop, the limiter, URLs."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest

from oafetch.config import BreakerConfig, RetryConfig
from oafetch.errors import BreakerOpenError, FetchError
from oafetch.http.breakers import Breakers
from oafetch.http.ratelimit import RateBudgetExceeded, RateLimiter
from oafetch.http.retry import RetryPolicy, parse_retry_after, should_retry
from oafetch.rates import parse_rate
from oafetch.tokens import Reason
from oafetch.urls import canonical_url, redact_url, url_hash

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_retry_after_over_the_cap_is_not_slept_on() -> None:
    config = RetryConfig(retry_after_cap_s=60)
    assert should_retry(FetchError(Reason.THROTTLED, "x", retryable=True, retry_after=30), config)
    assert not should_retry(
        FetchError(Reason.THROTTLED, "x", retryable=True, retry_after=3600), config
    )
    assert not should_retry(FetchError(Reason.NOT_FOUND, "x"), config)


def test_retry_loop_sleeps_retry_after_then_succeeds() -> None:
    slept: list[float] = []
    policy = RetryPolicy(RetryConfig(attempts=4), sleep=slept.append)
    calls: list[int] = []

    def attempt(n: int) -> str:
        calls.append(n)
        if n < 2:
            raise FetchError(Reason.THROTTLED, "429", retryable=True, retry_after=2)
        return "ok"

    assert policy.call(attempt) == "ok"
    assert calls == [0, 1, 2] and slept == [2, 2]


def test_retry_loop_gives_up_with_the_last_error() -> None:
    policy = RetryPolicy(
        RetryConfig(attempts=3, backoff_initial_s=0.1, jitter_s=0), sleep=lambda s: None
    )

    def attempt(n: int) -> str:
        raise FetchError(Reason.CONN_ERROR, f"reset {n}", retryable=True)

    with pytest.raises(FetchError, match="reset 2"):
        policy.call(attempt)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_limiter_spaces_requests_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(lambda key: parse_rate("2/s"), clock=clock)
    waits = [limiter.reserve("h") for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_limiter_sliding_window_caps_bursts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(lambda key: parse_rate("10/s, 3/min"), clock=clock)
    waits = [limiter.reserve("h") for _ in range(4)]
    assert waits[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert waits[3] == pytest.approx(60.0)


def test_limiter_refuses_waits_over_budget_without_reserving() -> None:
    clock = FakeClock()
    limiter = RateLimiter(lambda key: parse_rate("1/10s"), clock=clock)
    assert limiter.reserve("h") == 0
    with pytest.raises(RateBudgetExceeded):
        limiter.reserve("h", max_wait_s=5)
    assert limiter.next_free_in("h") == pytest.approx(10.0)


def test_limiter_only_slows_down_for_headers_and_crawl_delay() -> None:
    clock = FakeClock()
    limiter = RateLimiter(lambda key: parse_rate("10/s"), clock=clock)
    limiter.observe_headers("h", {"x-rate-limit-limit": "50", "x-rate-limit-interval": "1s"})
    assert limiter.interval_s("h") == pytest.approx(0.1)
    limiter.slow_to("h", 2.0)
    assert limiter.interval_s("h") == pytest.approx(2.0)


def test_limiter_groups_share_one_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(lambda key: parse_rate("1/s"), groups={"a": "g", "b": "g"}, clock=clock)
    assert limiter.reserve("a") == 0
    assert limiter.reserve("b") == pytest.approx(1.0)


def test_breaker_opens_after_fail_max_and_half_opens_for_one_probe() -> None:
    transitions: list[tuple[str, str]] = []
    breakers = Breakers(
        BreakerConfig(fail_max=3, reset_timeout_s=0.05),
        on_transition=lambda h, old, new, t: transitions.append((old, new)),
    )
    for _ in range(3):
        breakers.before("h")
        breakers.record("h", failure=True)
    assert breakers.state("h") == "open"
    with pytest.raises(BreakerOpenError):
        breakers.before("h")
    import time

    time.sleep(0.06)
    assert breakers.before("h") == "half-open"
    with pytest.raises(BreakerOpenError):
        breakers.before("h")  # only one probe at a time
    breakers.record("h", failure=False)
    assert breakers.state("h") == "closed"
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_a_request_that_never_reached_the_host_neither_heals_nor_trips_its_breaker() -> None:
    """A rate slot too far or a cancelled run is no answer of the host: it must not reset the
    failure count, close a half-open breaker unseen, or reopen it for another reset timeout;
    the probe it held is free for the next request."""
    import time

    import httpx

    from oafetch.http.transports import BreakerTransport

    answers: list[Exception | int] = []

    def host(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    breakers = Breakers(BreakerConfig(fail_max=3, reset_timeout_s=0.05))
    transport = BreakerTransport(httpx.MockTransport(host), breakers)

    def send(answer: Exception | int) -> None:
        answers.append(answer)
        with contextlib.suppress(FetchError, httpx.TransportError):
            transport.handle_request(httpx.Request("GET", "http://h.test/x"))

    send(503)
    send(503)
    send(RateBudgetExceeded("h.test", 30.0, 5.0))  # not a success: the count stays at 2
    send(FetchError(Reason.CANCELLED, "run interrupted"))
    assert breakers.state("h.test") == "closed"
    send(503)
    assert breakers.state("h.test") == "open"
    time.sleep(0.06)
    send(RateBudgetExceeded("h.test", 30.0, 5.0))  # the probe was never sent
    assert breakers.state("h.test") == "open"
    send(FetchError(Reason.CANCELLED, "run interrupted"))
    assert breakers.before("h.test") == "half-open"  # the probe is free again
    breakers.release("h.test")
    send(httpx.ConnectError("refused"))  # a real failure of the probe: open again
    assert breakers.state("h.test") == "open"
    time.sleep(0.06)
    send(200)
    assert breakers.state("h.test") == "closed"


def test_breaker_ignores_404s() -> None:
    breakers = Breakers(BreakerConfig(fail_max=2))
    for _ in range(5):
        breakers.before("h")
        breakers.record("h", failure=False)
    assert breakers.state("h") == "closed"


def test_url_canonicalisation_and_hash() -> None:
    a = canonical_url("HTTPS://Example.ORG:443/a%7Eb?b=2&a=1&api_key=k#x")
    assert a == "https://example.org/a~b?a=1&b=2"
    assert url_hash("https://example.org/a~b?a=1&b=2") == url_hash(
        "https://EXAMPLE.org/a~b?b=2&a=1&email=e@x"
    )
    assert len(url_hash("http://x")) == 16


@pytest.mark.parametrize("param", ["api_key", "key", "token", "email", "mailto", "sig", "API_KEY"])
def test_redaction_of_credential_parameters(param: str) -> None:
    shown = redact_url(f"https://user:pw@h.org/p?{param}=s3cr3t-value&q=1")
    assert "s3cr3t-value" not in shown and "pw" not in shown and "q=1" in shown


def test_a_retry_after_pauses_the_whole_host() -> None:
    clock = FakeClock()
    limiter = RateLimiter(lambda key: parse_rate("10/s"), clock=clock)
    assert limiter.reserve("h") == 0
    limiter.pause("h", 30)
    assert limiter.next_free_in("h") == pytest.approx(30.0)
    assert limiter.next_free_in("other") == 0
    with pytest.raises(RateBudgetExceeded):
        limiter.reserve("h", max_wait_s=5)
