"""The cluster-wide limiter: many workers' limiters behave as one per host (no Ray needed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from loopback import Loopback
from oafetch import Config
from oafetch.engines.shared_limiter import LimiterService, SharedRateLimiter, service_index
from oafetch.http.deadline import socket_transport
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

    def gate(self, host: str, *, again: bool = False) -> float:
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


class _StallingGate(RateLimiter):
    """An in-process gate on a clock the test moves: once it has said "send", the sender
    stalls (the clock jumps 10 s, and real time passes) before the request's first write."""

    def __init__(self, jitter_s: float) -> None:
        self.now = 0.0
        super().__init__(lambda _: parse_rate("2/s"), clock=lambda: self.now, jitter_s=jitter_s)
        self.told: list[str] = []

    def gate(self, host: str, *, again: bool = False) -> float:
        wait = super().gate(host, again=again)
        if wait <= 0:
            self.now = 10.0
            time.sleep(0.05)
        return wait

    def sent_late(self, host: str) -> None:
        self.told.append(host)
        super().sent_late(host)


def test_a_send_that_left_late_holds_the_hosts_next_sends_to_when_it_left(
    server: Loopback,
) -> None:
    """The gate recorded a send when it answered; the request left 10 s later (on the gate's
    clock). Told so after the first write, the gate spaces the next send from then: without
    it, a send at 10 s would go at once, right after the stalled one."""
    server.route("/x")(lambda handler: handler.reply(200, b"ok"))
    cancel = threading.Event()
    stalled, patient = _StallingGate(jitter_s=0.012), _StallingGate(jitter_s=5.0)
    for limiter in (stalled, patient):
        inner = socket_transport(cancel, verify=False, limits=httpx.Limits())
        transport = SendGateTransport(inner, limiter, cancel, at_socket=True)
        response = transport.handle_request(httpx.Request("GET", server.url("/x")))
        response.read()
        assert response.status_code == 200
        transport.close()
    assert stalled.told == ["127.0.0.1"]
    assert stalled.gate("127.0.0.1") >= 0.5  # the next send: a full interval after 10 s
    assert patient.told == []  # a stall within the gate's jitter budget is not told
    assert patient.gate("127.0.0.1") == 0.0


def test_a_late_send_is_told_to_the_service_that_owns_the_host(config: Config) -> None:
    services = [LimiterService(config), LimiterService(config)]
    told: list[tuple[Any, str]] = []

    def tell(service: Any, method: str, args: tuple[Any, ...]) -> None:
        told.append((service, method))
        _direct(service, method, args)

    worker = SharedRateLimiter(config, services, _direct, tell=tell)
    assert worker.gate("a.test") == 0.0
    worker.sent_late("a.test")
    owner = services[service_index(worker.key_for("a.test"), 2)]
    assert told == [(owner, "sent_late")]
    assert worker.gate("a.test") > 0.4  # held from when the service heard of it


def test_senders_waiting_for_a_busy_host_get_turns_one_interval_apart() -> None:
    """Three senders arriving while a 5/s host's slot is taken: each gets its own turn (not
    all the same wait, to wake together and crowd the gate at every slot); asking again only
    checks the actual sends; the turns still never let two sends closer than the gate does."""
    now = [0.0]
    limiter = RateLimiter(lambda _: parse_rate("5/s"), clock=lambda: now[0])
    assert limiter.gate("h") == 0.0
    now[0] = 0.01
    step = 0.2 + 0.006  # the interval and its margin at 5/s
    turns = [limiter.gate("h") for _ in range(3)]
    assert turns == pytest.approx([step - 0.01, 2 * step - 0.01, 3 * step - 0.01])
    assert limiter.gate("h", again=True) == pytest.approx(step - 0.01)  # no new turn taken
    now[0] = 0.01 + turns[0]
    assert limiter.gate("h", again=True) == 0.0  # the first turn: sent
    now[0] = 0.01 + turns[1] - 0.05  # the second woke early: the actual sends decide
    assert limiter.gate("h", again=True) == pytest.approx(0.05)
    assert limiter.gate("other") == 0.0  # another host: its own turns


def test_a_send_due_shortly_is_booked_and_the_next_is_spaced_from_its_due_moment() -> None:
    """Asked 10 ms before its slot, the gate books the send at the slot (the sender sends then
    without asking again); the next send is spaced from that moment, however late the first
    sender woke. Asked 50 ms before, nothing is booked: the sender asks again later."""
    now = [0.0]
    limiter = RateLimiter(lambda _: parse_rate("5/s"), clock=lambda: now[0])
    step = 0.2 + 0.006
    assert limiter.gate("h") == 0.0
    now[0] = step - 0.05
    assert limiter.gate("h", again=True) == pytest.approx(0.05)  # not booked
    now[0] = step - 0.01
    assert limiter.gate("h", again=True) == pytest.approx(0.01)  # booked at the slot
    now[0] = step + 0.008  # the sender woke 8 ms late; the next asks right away
    assert limiter.gate("h", again=True) == pytest.approx(step - 0.008)
