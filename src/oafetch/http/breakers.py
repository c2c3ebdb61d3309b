"""Per-host circuit breakers over pybreaker, kept behind a small adapter.

pybreaker's ``call()`` holds the breaker's lock for the whole call, which would serialise every
request to a host. So the adapter only *asks* the breaker before a request (``before``: fail
fast when open, let exactly one half-open probe through) and *tells* it the result afterwards
(``record``), which is when pybreaker moves between states and calls its listeners. 5xx answers
and transport failures count; 404s and other 4xx are successes as far as the host's health goes;
a request that never reached the host counts neither way (``release``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pybreaker

from oafetch.config import BreakerConfig
from oafetch.errors import BreakerOpenError

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

TransitionHook = Callable[[str, str, str, float], None]  # host, old, new, reset_timeout_s


class _CountedFailure(Exception):
    """Raised inside pybreaker to make it count a failure."""


def _raise_failure() -> None:
    raise _CountedFailure


def _succeed() -> None:
    return None


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, host: str, hook: TransitionHook) -> None:
        self._host = host
        self._hook = hook

    def state_change(
        self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object
    ) -> None:
        old = getattr(old_state, "name", str(old_state))
        new = getattr(new_state, "name", str(new_state))
        if old != new:
            self._hook(self._host, old, new, float(cb.reset_timeout))


def is_failure(status: int | None, challenge: bool = False) -> bool:
    """Whether an answer counts against the host: no response (None) or a 5xx (not a challenge)."""
    return status is None or (status >= 500 and not challenge)


class Breakers:
    """One pybreaker per host; ``on_transition`` receives every state change (telemetry)."""

    def __init__(
        self,
        config: BreakerConfig,
        *,
        on_transition: TransitionHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._hook = on_transition
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._probing: set[str] = set()

    def _get(self, host: str) -> pybreaker.CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(host)
            if breaker is None:
                listeners = [_Listener(host, self._hook)] if self._hook else []
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self._config.fail_max,
                    reset_timeout=self._config.reset_timeout_s,
                    listeners=listeners,
                    name=host,
                )
                self._breakers[host] = breaker
            return breaker

    def state(self, host: str) -> str:
        """The breaker state of ``host`` (``closed`` when breakers are disabled or unknown)."""
        if not self._config.enabled:
            return CLOSED
        with self._lock:
            breaker = self._breakers.get(host)
        return str(breaker.current_state) if breaker else CLOSED

    def remaining_s(self, host: str) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state(host) != OPEN:
            return 0.0
        breaker = self._get(host)
        opened: datetime | None = breaker._state_storage.opened_at
        if opened is None:
            return 0.0
        elapsed = datetime.now(UTC).timestamp() - opened.timestamp()
        return max(0.0, float(breaker.reset_timeout) - elapsed)

    def before(self, host: str) -> str:
        """Check the breaker before a request; return its state.

        Raises:
            BreakerOpenError: the breaker is open, or half-open with its probe in flight.
        """
        if not self._config.enabled:
            return CLOSED
        state = self.state(host)
        if state == CLOSED:
            return state
        remaining = self.remaining_s(host)
        if remaining > 0:
            raise BreakerOpenError(host, remaining)
        with self._lock:  # timeout elapsed: exactly one probe goes through
            if host in self._probing:
                raise BreakerOpenError(host, 0.0)
            self._probing.add(host)
        return HALF_OPEN

    def release(self, host: str) -> None:
        """The request ``before`` let through never reached the host (its rate slot was too
        far, the run was cancelled): nothing to count, but a probe it held is free again."""
        with self._lock:
            self._probing.discard(host)

    def record(self, host: str, *, failure: bool) -> None:
        """Tell the breaker how the request went (after ``before``)."""
        if not self._config.enabled:
            return
        breaker = self._get(host)
        try:
            breaker.call(_raise_failure if failure else _succeed)
        except (_CountedFailure, pybreaker.CircuitBreakerError):
            pass
        finally:
            with self._lock:
                self._probing.discard(host)
