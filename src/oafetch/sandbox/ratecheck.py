"""Server-side politeness checks: rate strings and a sliding-window admission check.

A host configured at ``count/period`` admits a request when fewer than `count` requests were
admitted during the last ``period - tolerance`` seconds (tolerance = max(5 ms, 5 % of the
period), so a client pacing exactly at the rate is never refused because of scheduling jitter).
Refused requests are not counted. A client stays clean if it never puts more than `count`
requests into any window of `period`: even spacing (a bucket of capacity 1) or a sliding-window
limiter does; a token bucket with burst capacity above 1 does not.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]*)\s*$")


@dataclass(frozen=True)
class RateSpec:
    """`count` requests per `period` seconds."""

    count: int
    period: float

    @classmethod
    def parse(cls, value: str | float | int) -> RateSpec:
        """Parse ``"10/s"``, ``"1/3s"``, ``"60/min"``, ``"100/h"`` or requests per second.

        Raises:
            ValueError: the value is not a positive rate; the message quotes it.
        """
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not value > 0 or math.isinf(value):
                raise ValueError(f"rate: must be > 0 requests per second (got {value!r})")
            frac = Fraction(value).limit_denominator(1000)
            return cls(frac.numerator, float(frac.denominator))
        match = _RATE.match(str(value).lower())
        if not match or match.group(3) not in _UNITS:
            raise ValueError(f"rate: expected 'N/s', 'N/Ks', 'N/min' or 'N/h' (got {value!r})")
        count = int(match.group(1))
        period = float(match.group(2) or 1) * _UNITS[match.group(3)]
        if count <= 0 or period <= 0:
            raise ValueError(f"rate: count and period must be > 0 (got {value!r})")
        return cls(count, period)

    @property
    def per_second(self) -> float:
        """The average rate in requests per second."""
        return self.count / self.period

    def __str__(self) -> str:
        if self.period == 1:
            return f"{self.count}/s"
        return f"{self.count}/{self.period:g}s"


class SlidingWindow:
    """Admits requests at most `spec.count` per `spec.period` (minus a tolerance).

    Thread-safe; `check` never blocks beyond a short lock.
    """

    def __init__(
        self,
        spec: RateSpec,
        tolerance: float = 0.05,
        min_tolerance: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.window = spec.period - max(min_tolerance, tolerance * spec.period)
        self._clock = clock
        self._admitted: deque[float] = deque()
        self._lock = threading.Lock()

    def check(self) -> float | None:
        """Admit and record a request now (None), or return seconds until one would be admitted."""
        now = self._clock()
        with self._lock:
            admitted = self._admitted
            horizon = now - self.window
            while admitted and admitted[0] <= horizon:
                admitted.popleft()
            if len(admitted) < self.spec.count:
                admitted.append(now)
                return None
            return max(admitted[0] - horizon, 0.001)

    def reset(self) -> None:
        """Forget every admitted request."""
        with self._lock:
            self._admitted.clear()


def retry_after_seconds(wait: float) -> int:
    """The Retry-After value (whole seconds, at least 1) for a wait of `wait` seconds."""
    return max(1, math.ceil(wait))
