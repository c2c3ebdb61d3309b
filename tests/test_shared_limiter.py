"""The cluster-wide limiter: many workers' limiters behave as one per host (no Ray needed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from oafetch import Config
from oafetch.engines.shared_limiter import LimiterService, SharedRateLimiter, service_index
from oafetch.http.ratelimit import RateBudgetExceeded, RateLimiter
from oafetch.http.transports import SendGateTransport
from oafetch.rates import parse_rate


def _direct(service: Any, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(service, method)(*args)


@pytest.fixture
def config(tmp_path: Any) -> Config:
    return Config.load(None, out_dir=tmp_path, rates={"a.test": "2/s", "b.test": "2/s"})


def test_two_workers_share_one_budget_per_host(config: Config) -> None:
    services = [LimiterService(config), LimiterService(config)]
    one, two = (
        SharedRateLimiter(config, services, _direct),
        SharedRateLimiter(config, services, _direct),
    )
    waits = [one.reserve("a.test"), two.reserve("a.test"), one.reserve("a.test")]
    # one host's slots are spaced 0.5 s apart whichever worker asks
    assert waits[0] < 0.1 and 0.3 < waits[1] < 0.6 and 0.8 < waits[2] < 1.1
    assert two.reserve("b.test") < 0.1  # another host has its own budget
    assert one.gate("a.test") == 0.0 and two.gate("a.test") > 0.3  # actual sends too


def test_floors_pauses_and_kept_slots_cross_workers(config: Config) -> None:
    services = [LimiterService(config)]
    one, two = (
        SharedRateLimiter(config, services, _direct),
        SharedRateLimiter(config, services, _direct),
    )
    one.slow_to("a.test", 2.0)  # a Crawl-delay seen by one worker
    assert two.interval_s("a.test") == 2.0
    two.reserve("a.test")
    with pytest.raises(RateBudgetExceeded) as caught:
        one.reserve("a.test", max_wait_s=0.5, keep=True)
    assert caught.value.reserved is not None
    assert 1.5 < one.take(caught.value.reserved) <= 2.1  # on the worker's own clock
    one.pause("b.test", 30)
    assert two.next_free_in("b.test") > 25
    one.observe_headers("b.test", {"content-type": "text/plain"})  # no limit headers: no call


def test_each_rate_key_has_one_owner() -> None:
    owners = {service_index(f"host{i}.test", 4) for i in range(50)}
    assert owners == {0, 1, 2, 3}
    assert service_index("api.crossref.org", 4) == service_index("api.crossref.org", 4)


class _SlowFirstGate(RateLimiter):
    """A gate whose first answer comes back late (a stalled RPC), then answers at once."""

    def __init__(self, stale_s: float) -> None:
        super().__init__(lambda _: parse_rate("100/s"))
        self.gate_stale_s = stale_s
        self.calls = 0

    def gate(self, host: str) -> float:
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.2)
        return 0.0


def test_a_late_remote_gate_answer_is_asked_again_before_sending() -> None:
    """The service recorded the send when it answered; a send leaving much later would reach
    the host closer to the next one than allowed, so the transport asks the gate again."""
    inner = httpx.MockTransport(lambda request: httpx.Response(200))
    remote, local = _SlowFirstGate(0.05), _SlowFirstGate(float("inf"))
    for limiter in (remote, local):
        transport = SendGateTransport(inner, limiter, threading.Event())
        assert transport.handle_request(httpx.Request("GET", "http://a.test/x")).status_code == 200
    assert remote.calls >= 2  # asked again (more, on a machine slow enough to stall again)
    assert local.calls == 1  # an in-process gate answers fresh: never asked twice
