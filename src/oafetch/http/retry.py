"""Retry decisions and the retry loop (tenacity), with ``Retry-After`` honoured and capped.

Pure parts (:func:`parse_retry_after`, :func:`wait_for`) are table-tested without sleeping; the
loop (:class:`RetryPolicy`) takes an injected ``sleep`` so tests never wait for real.
A ``Retry-After`` beyond the cap is not slept on: the attempt fails with its reason and the
caller defers the work (a worker never sits in a multi-minute wait).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from oafetch.config import RetryConfig
from oafetch.errors import FetchError
from oafetch.tokens import Reason

T = TypeVar("T")

# Statuses worth another try: throttling and transient gateway/server trouble.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Returns ``None`` when absent or unparseable; never negative.

    >>> parse_retry_after("2")
    2.0
    >>> now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now)
    30.0
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():  # ("²".isdigit() is True, int("²") fails)
        # a thousand-digit delay is still "longer than any cap", not an OverflowError
        return float(int(text)) if len(text) <= 15 else 1e15
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_s(attempt: int, config: RetryConfig, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (1-based)."""
    base = min(config.backoff_max_s, config.backoff_initial_s * (2.0 ** max(0, attempt - 1)))
    jitter: float = (rng or random).uniform(0, config.jitter_s)
    return float(min(config.backoff_max_s, base + jitter))


def wait_for(exc: BaseException, attempt: int, config: RetryConfig) -> tuple[float, Reason]:
    """How long to sleep before retrying after ``exc``, and why (``retry-after``/``backoff``)."""
    if isinstance(exc, FetchError) and exc.retry_after is not None:
        return min(exc.retry_after, config.retry_after_cap_s), Reason.RETRY_AFTER
    return backoff_s(attempt, config), Reason.BACKOFF


def should_retry(exc: BaseException, config: RetryConfig) -> bool:
    """Retry only retryable fetch errors whose requested wait fits under the cap."""
    if not isinstance(exc, FetchError) or not exc.retryable:
        return False
    return exc.retry_after is None or exc.retry_after <= config.retry_after_cap_s


def _plain_sleep(seconds: float) -> None:
    threading.Event().wait(seconds)


OnRetry = Callable[[int, float, Reason, FetchError], None]


class RetryPolicy:
    """Runs an attempt function under the retry policy.

    Args:
        config: attempts, total time, backoff and the ``Retry-After`` cap.
        sleep: how to wait (injected by tests; the client passes an interruptible wait).
    """

    def __init__(
        self,
        config: RetryConfig,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self._sleep: Callable[[float], None] = sleep or _plain_sleep

    def call(self, attempt_fn: Callable[[int], T], *, on_retry: OnRetry | None = None) -> T:
        """Call ``attempt_fn(retry_count)`` until it returns, or re-raise its last error.

        ``retry_count`` is 0 for the first attempt. ``on_retry(retry_number, sleep_s, reason,
        error)`` runs before each sleep (telemetry, attempts.csv).
        """
        config = self.config

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return wait_for(exc, state.attempt_number, config)[0] if exc else 0.0

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if on_retry and isinstance(exc, FetchError):
                sleep_s, reason = wait_for(exc, state.attempt_number, config)
                on_retry(state.attempt_number, sleep_s, reason, exc)

        retrying = Retrying(
            stop=stop_after_attempt(config.attempts) | stop_after_delay(config.total_s),
            wait=wait,
            retry=retry_if_exception(lambda e: should_retry(e, config)),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                result = attempt_fn(attempt.retry_state.attempt_number - 1)
        return result
