"""Per-host rate limiting by reservation: even spacing plus sliding windows.

Each host (or rate group, e.g. all NCBI hosts) has a :class:`~oafetch.rates.RatePolicy`. A
request *reserves* the earliest start time that keeps every window of the policy — even spacing
at the shortest window's rate, and never more than ``count`` starts in any ``period`` (a sliding
log, so bursts at a window's edge cannot exceed what a server-side sliding window allows). The
caller then sleeps until its start time. Reservations are FIFO and lock-protected, so threads
never stampede, and a wait longer than the budget is refused *without* reserving, so the caller
can defer the work instead of blocking a worker (reason ``rate-budget``).

Robots ``Crawl-delay`` and ``x-rate-limit-*`` response headers can only slow a host down.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from oafetch.errors import FetchError
from oafetch.rates import RatePolicy
from oafetch.tokens import Reason

Clock = Callable[[], float]

# The server may see two sends closer together than the gate (the request's first socket
# write) let them go: the jitter between the gate and the server's clock, thread scheduling on
# both sides, measured at up to ~11 ms on a loaded 2-core machine (docs/BENCHMARKS.md). What
# the server counts is held against it:
# * no window holds more than its count: each window gets a margin of 5 ms + at least 1 % of
#   its period (at least GATE_JITTER_S for a window of a second or more), once per window;
# * no two sends closer than 97 % of the interval (GATE_GAP_TOLERANCE): the spacing gets the
#   jitter that tolerance does not absorb, at least GATE_MARGIN_MIN_S and never more than
#   5 ms + 3 % of the interval (the windows' margin keeps the counts at high rates, where the
#   whole jitter would slow a host by more than a tenth).
GATE_JITTER_S = 0.012
# A send due within this is booked by the gate (see ``RateLimiter.gate``); a sender told to wait
# longer asks again this much before its wait ends, so its second question books it.
GATE_BOOK_AHEAD_S = 0.02
GATE_GAP_TOLERANCE = 0.03
GATE_MARGIN_MIN_S = 0.002
GATE_MARGIN_S = 0.005
GATE_MARGIN_FRACTION = 0.03
GATE_WINDOW_FRACTION = 0.01


def spacing_margin(spacing_s: float, jitter_s: float = GATE_JITTER_S) -> float:
    """The margin the gate adds to a host's spacing of ``spacing_s`` between actual sends."""
    needed = max(GATE_MARGIN_MIN_S, jitter_s - GATE_GAP_TOLERANCE * spacing_s)
    return min(needed, GATE_MARGIN_S + GATE_MARGIN_FRACTION * spacing_s)


def window_margin(period_s: float, count: int, jitter_s: float = GATE_JITTER_S) -> float:
    """The margin the gate adds to a window of ``count`` sends per ``period_s``."""
    spread = max(GATE_MARGIN_FRACTION * period_s / count, GATE_WINDOW_FRACTION * period_s)
    return max(GATE_MARGIN_S + spread, jitter_s if period_s >= 1 else 0.0)


# The longest a Retry-After may pause a host (the retry policy caps what one work waits).
MAX_PAUSE_S = 3600.0


class RateBudgetExceeded(FetchError):
    """The wait for a rate slot would exceed the budget.

    Nothing was reserved, unless the caller asked to keep the slot (``reserved`` is then the
    slot's start on the limiter's clock, to be used by :meth:`RateLimiter.take`).
    """

    def __init__(
        self, host: str, wait_s: float, budget_s: float, reserved: float | None = None
    ) -> None:
        super().__init__(
            Reason.RATE_BUDGET,
            f"rate limit for {host}: next slot in {wait_s:.1f}s exceeds the {budget_s:.1f}s budget",
            retry_after=wait_s,
        )
        self.host = host
        self.wait_s = wait_s
        self.reserved = reserved
        # The URL of the request that met the wait (a redirect hop, maybe): a parked work
        # resumes there, with its kept slot, instead of repeating the hops before it.
        self.url: str | None = None


@dataclass
class _HostState:
    policy: RatePolicy
    spacing_s: float
    floor_s: float = 0.0
    last_start: float = float("-inf")
    last_sent: float = float("-inf")
    next_turn: float = float("-inf")  # the earliest turn the gate may hand a new waiting sender
    paused_until: float = float("-inf")  # a host's Retry-After applies to every request to it
    logs: list[deque[float]] = field(default_factory=list)
    sent_logs: list[deque[float]] = field(default_factory=list)  # actual sends, per window

    def earliest(self, now: float) -> float:
        start = max(now, self.paused_until, self.last_start + max(self.spacing_s, self.floor_s))
        for window, log in zip(self.policy.windows, self.logs, strict=True):
            if len(log) >= window.count:
                start = max(start, log[0] + window.period_s)
        return start

    def commit(self, start: float) -> None:
        self.last_start = start
        for log in self.logs:
            log.append(start)


def _state_for(policy: RatePolicy) -> _HostState:
    shortest = min(policy.windows, key=lambda w: w.period_s, default=None)
    spacing = shortest.interval_s if shortest else 0.0
    logs: list[deque[float]] = [deque(maxlen=max(1, int(w.count))) for w in policy.windows]
    sent: list[deque[float]] = [deque(maxlen=max(1, int(w.count))) for w in policy.windows]
    return _HostState(policy=policy, spacing_s=spacing, logs=logs, sent_logs=sent)


class RateLimiter:
    """Reservation-based limiter shared by every thread of a run.

    ``gate_stale_s``: a gate answer that took longer than this to come back is asked again
    (infinite here: this gate answers in-process; a remote one sets it). ``book_ahead_s``: a
    gate answer up to this long is a booked send (see ``gate``).

    Args:
        policy_for: the policy for a rate key (host name or group name).
        groups: host → group name, for hosts that share one budget.
        enabled: ``False`` makes every reservation immediate (benchmarks, local mirrors).
        clock: monotonic clock (injectable for tests).
        jitter_s: how much closer than the gate let them go two sends may reach the server
            (the gate's margins cover it), and how late after its due moment a send may leave
            before the gate must hear of it (``sent_late``).
    """

    gate_stale_s = float("inf")
    book_ahead_s = GATE_BOOK_AHEAD_S

    def __init__(
        self,
        policy_for: Callable[[str], RatePolicy],
        *,
        groups: Mapping[str, str] | None = None,
        enabled: bool = True,
        clock: Clock = time.monotonic,
        jitter_s: float = GATE_JITTER_S,
    ) -> None:
        self._policy_for = policy_for
        self._jitter_s = jitter_s
        self._groups = dict(groups or {})
        self._enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    @property
    def jitter_s(self) -> float:
        """How late after its due moment a send may leave before the gate must hear of it."""
        return self._jitter_s

    def key_for(self, host: str) -> str:
        """The rate key of ``host``: its group if it shares a budget, else the host itself."""
        return self._groups.get(host, host)

    def _state(self, key: str) -> _HostState:
        state = self._hosts.get(key)
        if state is None:
            state = self._hosts[key] = _state_for(self._policy_for(key))
        return state

    def reserve(self, host: str, *, max_wait_s: float | None = None, keep: bool = False) -> float:
        """Reserve the next slot for ``host``; return how long to wait before sending.

        With ``keep``, a slot beyond the budget is still reserved and handed back in the
        exception, so a parked work keeps its place in the host's queue.

        Raises:
            RateBudgetExceeded: the wait would exceed ``max_wait_s`` (nothing reserved unless
                ``keep``).
        """
        if not self._enabled:
            return 0.0
        key = self.key_for(host)
        with self._lock:
            state = self._state(key)
            if state.policy.unlimited and state.floor_s <= 0:
                return 0.0
            now = self._clock()
            start = state.earliest(now)
            wait = start - now
            if max_wait_s is not None and wait > max_wait_s:
                if keep:
                    state.commit(start)
                raise RateBudgetExceeded(host, wait, max_wait_s, start if keep else None)
            state.commit(start)
            return wait

    def take(self, reserved: float) -> float:
        """Seconds until a slot reserved earlier (``RateBudgetExceeded.reserved``) starts."""
        return max(0.0, reserved - self._clock())

    def gate(self, host: str, *, again: bool = False) -> float:
        """The final check right before sending: the seconds until the send is due.

        A reserved slot may be taken late (the thread woke up late, or waited for a worker
        slot); the next reservation may then be on time, and the two would reach the server
        closer together than the policy allows. The gate spaces *actual* sends, with a margin
        for the jitter between here and the server's clock, and keeps every window of the
        policy (``5/s, 12/3s``: never a 13th send within 3 s), not only the shortest.

        A send due within ``book_ahead_s`` is booked: recorded at the moment it is due, the
        wait returned, and the sender sends once it has waited, without asking again. (Were
        it told to ask again then, the next send would be spaced from when that second
        question arrived: every thread's wake-up lateness and round trip added to the host's
        interval, at every slot. A send that leaves later than the jitter budget after its due
        moment is told back, ``sent_late``.) A longer wait is not booked: the sender asks
        again shortly before it ends.

        A sender told to wait on its first question gets a turn of its own: the waits handed
        out are spaced one interval apart in the order asked, so the senders queued for a busy
        host wake one per slot, not all at each slot (all asking, and the one that gets it
        answered behind the crowd: a few ms lost at every slot). Its next questions
        (``again``) only check the actual sends, as every question does before it sends.
        """
        if not self._enabled:
            return 0.0
        with self._lock:
            state = self._state(self.key_for(host))
            spacing = max(state.spacing_s, state.floor_s)
            if spacing <= 0 and not state.sent_logs:
                return 0.0
            now = self._clock()
            remaining = 0.0
            step = spacing + spacing_margin(spacing, self._jitter_s) if spacing > 0 else 0.0
            if spacing > 0:
                remaining = state.last_sent + step - now
            for window, sent in zip(state.policy.windows, state.sent_logs, strict=True):
                if len(sent) >= window.count:
                    margin = window_margin(window.period_s, int(window.count), self._jitter_s)
                    remaining = max(remaining, sent[0] + window.period_s + margin - now)
            if remaining > self.book_ahead_s:
                if again or step <= 0:
                    return remaining
                turn = max(now + remaining, state.next_turn)
                state.next_turn = turn + step
                return turn - now
            due = now + max(0.0, remaining)
            state.last_sent = due
            for sent in state.sent_logs:
                sent.append(due)
            return due - now

    def sent_late(self, host: str) -> None:
        """A send the gate booked left later than its margins absorb (the sender woke late, or
        stalled before its first write): hold the next sends to ``host`` to now, as if it had
        left now (later than it did: never closer to the next one than the policy)."""
        if not self._enabled:
            return
        with self._lock:
            state = self._state(self.key_for(host))
            now = self._clock()
            state.last_sent = max(state.last_sent, now)
            for sent in state.sent_logs:
                if sent:
                    sent[-1] = max(sent[-1], now)

    def next_free_in(self, host: str) -> float:
        """Seconds until ``host`` could start a request, without reserving (0 when free now)."""
        if not self._enabled:
            return 0.0
        with self._lock:
            state = self._state(self.key_for(host))
            now = self._clock()
            return max(0.0, state.earliest(now) - now)

    def interval_s(self, host: str) -> float:
        """The spacing currently imposed on ``host`` (0 when unlimited)."""
        if not self._enabled:
            return 0.0
        with self._lock:
            state = self._state(self.key_for(host))
            return max(state.spacing_s, state.floor_s)

    def slow_to(self, host: str, interval_s: float) -> None:
        """Never start requests to ``host`` closer than ``interval_s`` (only ever slows down)."""
        if interval_s <= 0:
            return
        with self._lock:
            state = self._state(self.key_for(host))
            state.floor_s = max(state.floor_s, interval_s)

    def pause(self, host: str, seconds: float) -> None:
        """No request to ``host`` for ``seconds`` (it answered 429/503 with ``Retry-After``).

        Every work waiting for the host then sees the pause (and parks instead of asking again),
        rather than each one spending a request to learn the same thing.
        """
        if not self._enabled or seconds <= 0:
            return
        with self._lock:
            state = self._state(self.key_for(host))
            state.paused_until = max(state.paused_until, self._clock() + min(seconds, MAX_PAUSE_S))

    def known_robots(self, url: str) -> tuple[int | None, str] | None:
        """A robots.txt (or tdmrep.json) answer another worker of the run already fetched;
        None here: one process caches its own (:class:`oafetch.http.robots.RobotsCache`)."""
        return None

    def remember_robots(self, url: str, status: int | None, text: str) -> None:
        """Offer a fetched robots.txt answer to the run's other workers (a no-op here)."""

    def observe_headers(self, host: str, headers: Mapping[str, str]) -> None:
        """Adapt to ``x-rate-limit-limit``/``x-rate-limit-interval`` when they ask for less."""
        limit = headers.get("x-rate-limit-limit")
        interval = headers.get("x-rate-limit-interval")
        if not limit or not interval:
            return
        try:
            count = float(limit)
            period = float(interval.strip().rstrip("s") or "1")
        except ValueError:
            return
        if count > 0 and period > 0:
            self.slow_to(host, period / count)
