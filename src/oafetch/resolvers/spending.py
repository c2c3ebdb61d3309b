"""A run's spending cap on a billed source: calls and dollars, charged once per URL.

Pure bookkeeping, no I/O; thread-safe (the works of a batch charge it from many threads).
A billed source charges a URL right before the fallback chain downloads it
(:meth:`~oafetch.resolvers.base.Resolver.before_fetch`), so a dry run, a list-only run or a
work that ends before the download spends nothing. A URL is charged once per run: a retried or
parked-and-resumed download is one call, as the fallback chain fetches each URL once per run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from oafetch.errors import FetchError
from oafetch.tokens import Reason


@dataclass
class SpendingCap:
    """At most ``max_calls`` calls and ``max_usd`` dollars at ``usd_per_call`` each.

    Either limit may be ``None`` (no limit of that kind). ``refused`` counts the downloads the
    cap stopped.
    """

    source: str
    usd_per_call: float
    max_calls: int | None = None
    max_usd: float | None = None
    calls: int = 0
    refused: int = 0
    _charged: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def usd(self) -> float:
        """Dollars spent so far (rounded to cents' hundredths, as prices are)."""
        return round(self.calls * self.usd_per_call, 4)

    def _room(self) -> bool:
        if self.max_calls is not None and self.calls + 1 > self.max_calls:
            return False
        # a hair of tolerance: 100 x $0.01 must fit a $1.00 cap despite binary floating point
        spent = (self.calls + 1) * self.usd_per_call
        return self.max_usd is None or spent <= self.max_usd + 1e-9

    def exhausted(self) -> bool:
        """Whether one more call would break the cap."""
        with self._lock:
            return not self._room()

    def charge(self, key: str) -> None:
        """Count one call for ``key`` (a canonical URL), unless it was already charged.

        Raises:
            FetchError: ``spend-cap`` — the call would break the cap; nothing is counted but
                the refusal.
        """
        with self._lock:
            if key in self._charged:
                return
            if not self._room():
                self.refused += 1
                raise FetchError(Reason.SPEND_CAP, self._message())
            self._charged.add(key)
            self.calls += 1

    def refuse(self) -> FetchError:
        """Count a refusal made before any charge (the cap was already used up): the error."""
        with self._lock:
            self.refused += 1
            return FetchError(Reason.SPEND_CAP, self._message())

    def _message(self) -> str:
        limits = []
        if self.max_calls is not None:
            limits.append(f"max_calls = {self.max_calls}")
        if self.max_usd is not None:
            limits.append(f"max_usd = {self.max_usd:g}")
        return (
            f"{self.source}: spending cap reached ({' and '.join(limits)}; "
            f"{self.calls} calls, ${self.usd:.2f} spent this run)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The figures ``summary.json`` records."""
        with self._lock:
            return {
                "calls": self.calls,
                "usd": self.usd,
                "usd_per_call": self.usd_per_call,
                "max_calls": self.max_calls,
                "max_usd": self.max_usd,
                "refused": self.refused,
            }
