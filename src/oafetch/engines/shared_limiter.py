"""One rate budget per host for a whole cluster: a limiter service and its local stand-in.

:class:`LimiterService` is a plain :class:`~oafetch.http.ratelimit.RateLimiter` behind methods
that return values instead of raising (so an engine can host it in an actor or any RPC server).
Rate keys are spread over ``N`` services by a stable hash, so one host's reservations, gate
checks, Crawl-delay floor and Retry-After pause always live in exactly one process.

:class:`SharedRateLimiter` is what each worker's HTTP stack uses in place of its own limiter: it
has the limiter's interface and forwards every call to the owning service through ``call``
(an engine's blocking RPC). Waits come back as durations, never as instants of the service's
clock, so workers on other machines need no clock agreement: a slot kept past the budget
(``RateBudgetExceeded.reserved``) is translated into the worker's own clock on the way back.
The services also keep each host's robots.txt answer, so a run asks a host for it once, not
once per shard.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oafetch.config import Config
from oafetch.http.ratelimit import RateBudgetExceeded, RateLimiter
from oafetch.rates import DEFAULT_RATE_GROUPS
from oafetch.urls import host_of

#: A remote gate's answer older than this when it arrives is stale (round trips: ~1 ms; a
#: stall this long is past what the gate's margins absorb, and re-asking costs the host a slot).
GATE_STALE_S = 0.05

#: ``call(service, method_name, *args)`` → the method's return value (blocking).
Call = Callable[[Any, str, tuple[Any, ...]], Any]
#: ``tell(service, method_name, *args)``: the same call where no answer is awaited.
Tell = Callable[[Any, str, tuple[Any, ...]], None]


class LimiterService:
    """The rate limiter of every host whose key hashes to this service, and the robots.txt
    answers of those hosts (fetched once for the whole run, not once per shard)."""

    def __init__(self, config: Config) -> None:
        self._limiter = RateLimiter(
            config.rate_policy,
            groups={**DEFAULT_RATE_GROUPS},
            enabled=config.politeness.enabled,
        )
        self._robots_config = config.robots
        self._robots: dict[str, tuple[int | None, str, float]] = {}  # url -> answer, expiry
        self._lock = threading.Lock()

    def known_robots(self, host: str, url: str) -> tuple[int | None, str] | None:
        with self._lock:
            found = self._robots.get(url)
        if found is None or found[2] <= time.monotonic():
            return None
        return found[0], found[1]

    def remember_robots(self, host: str, url: str, status: int | None, text: str) -> None:
        failed = status is None or status >= 500  # unreachable: kept as briefly as locally
        config = self._robots_config
        ttl = config.error_ttl_s if failed else config.ttl_s
        with self._lock:
            self._robots[url] = (status, text, time.monotonic() + ttl)

    def reserve(
        self, host: str, max_wait_s: float | None, keep: bool
    ) -> tuple[float, float | None, float | None]:
        """``(wait, None, None)``, or ``(wait, budget, slot_in)`` when the budget is exceeded
        (``slot_in``: seconds until the kept slot, ``None`` if nothing was kept)."""
        try:
            return self._limiter.reserve(host, max_wait_s=max_wait_s, keep=keep), None, None
        except RateBudgetExceeded as exc:
            kept = None if exc.reserved is None else self._limiter.take(exc.reserved)
            return exc.wait_s, max_wait_s, kept

    def gate(self, host: str, again: bool = False) -> float:
        return self._limiter.gate(host, again=again)

    def sent_late(self, host: str) -> None:
        self._limiter.sent_late(host)

    def next_free_in(self, host: str) -> float:
        return self._limiter.next_free_in(host)

    def interval_s(self, host: str) -> float:
        return self._limiter.interval_s(host)

    def slow_to(self, host: str, interval_s: float) -> None:
        self._limiter.slow_to(host, interval_s)

    def pause(self, host: str, seconds: float) -> None:
        self._limiter.pause(host, seconds)

    def observe_headers(self, host: str, headers: dict[str, str]) -> None:
        self._limiter.observe_headers(host, headers)


def service_index(key: str, count: int) -> int:
    """The service owning rate key ``key`` (stable across processes and runs)."""
    return zlib.crc32(key.encode()) % count


class SharedRateLimiter(RateLimiter):
    """A worker's view of the cluster's limiter services (same interface as RateLimiter).

    A gate answer slower than ``GATE_STALE_S`` is asked again (see the HTTP transport): the
    service recorded the send when it answered, and a send that leaves much later would reach
    the host closer to the next one than the service allowed. A send that left later than the
    gate's jitter budget after its due moment is told to the service (``tell``: nothing
    awaited), which then holds the host's next sends to the moment it hears of it. Services and
    workers use the same budget as one process: the late-send tells cover what a network adds.
    """

    gate_stale_s = GATE_STALE_S

    def __init__(
        self,
        config: Config,
        services: Sequence[Any],
        call: Call,
        *,
        tell: Tell | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            config.rate_policy,
            groups={**DEFAULT_RATE_GROUPS},
            enabled=config.politeness.enabled,
            clock=clock,
        )
        self._services = list(services)
        self._call = call
        self._tell = tell or call
        self._local_clock = clock

    def _owner(self, host: str) -> Any:
        return self._services[service_index(self.key_for(host), len(self._services))]

    def _ask(self, host: str, method: str, *args: Any) -> Any:
        return self._call(self._owner(host), method, (host, *args))

    def reserve(self, host: str, *, max_wait_s: float | None = None, keep: bool = False) -> float:
        if not self._enabled:
            return 0.0
        wait, budget, slot_in = self._ask(host, "reserve", max_wait_s, keep)
        if budget is None:
            return float(wait)
        reserved = None if slot_in is None else self._local_clock() + float(slot_in)
        raise RateBudgetExceeded(host, float(wait), float(budget), reserved)

    def gate(self, host: str, *, again: bool = False) -> float:
        return float(self._ask(host, "gate", again)) if self._enabled else 0.0

    def sent_late(self, host: str) -> None:
        if self._enabled:
            self._tell(self._owner(host), "sent_late", (host,))

    def next_free_in(self, host: str) -> float:
        return float(self._ask(host, "next_free_in")) if self._enabled else 0.0

    def interval_s(self, host: str) -> float:
        return float(self._ask(host, "interval_s")) if self._enabled else 0.0

    def slow_to(self, host: str, interval_s: float) -> None:
        if interval_s > 0:
            self._ask(host, "slow_to", interval_s)

    def pause(self, host: str, seconds: float) -> None:
        if self._enabled and seconds > 0:
            self._ask(host, "pause", seconds)

    def known_robots(self, url: str) -> tuple[int | None, str] | None:
        found = self._ask(host_of(url), "known_robots", url) if self._enabled else None
        return None if found is None else (found[0], str(found[1]))

    def remember_robots(self, url: str, status: int | None, text: str) -> None:
        if self._enabled:
            self._ask(host_of(url), "remember_robots", url, status, text)

    def observe_headers(self, host: str, headers: Mapping[str, str]) -> None:
        wanted = {k: headers.get(k) or "" for k in ("x-rate-limit-limit", "x-rate-limit-interval")}
        if all(wanted.values()):
            self._ask(host, "observe_headers", wanted)
