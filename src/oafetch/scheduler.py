"""The host-aware scheduler: many works on a thread pool, never idling behind politeness.

* **Active slots.** At most ``workers`` threads *work* at once (a semaphore); a thread gives its
  slot back whenever it only waits — a rate-limit slot, a retry back-off, its parallel sources
  (:mod:`oafetch.waiting`) — so a wait at one host never costs another host its throughput.
* **Parking.** When a work's file sits on a host whose next slot is further away than
  ``defer_after_s`` (a slow host, a long ``Retry-After``), the work is *parked* with its
  progress and no thread at all; it is resumed when the slot comes. A slow host therefore
  never captures the pool: its works queue for it while the rest of the batch flows.
* **Bounded memory.** Inputs are streamed; at most ``max_threads`` works run and at most
  ``max_parked`` wait, so memory stays flat however long the input is.

The pure choice of what to do next (:func:`next_action`) is separate from the loop that does it.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from oafetch import waiting
from oafetch.results import DownloadResult
from oafetch.works import InputLine

if TYPE_CHECKING:
    from oafetch.downloader import Downloader, Parked


@dataclass(order=True)
class _Due:
    not_before: float
    seq: int
    parked: Parked = field(compare=False)


def next_action(
    *,
    now: float,
    running: int,
    max_threads: int,
    parked_due: float | None,
    parked_count: int,
    max_parked: int,
    input_left: bool,
    stopping: bool,
    headroom: int = 0,
) -> str:
    """What the loop should do now: ``resume``, ``admit``, ``wait`` or ``done``.

    Resuming a due parked work comes before admitting new input (it holds a rate slot that
    would otherwise go unused, and finishing it frees memory). New input is admitted only while
    threads (minus ``headroom``, kept free for resumes) and the parked budget allow.
    """
    if running < max_threads and parked_due is not None and parked_due <= now and not stopping:
        return "resume"
    admit = running < max_threads - headroom
    if admit and input_left and parked_count < max_parked and not stopping:
        return "admit"
    if running or (parked_count and not stopping):
        return "wait"
    return "done"


class Scheduler:
    """Feeds input lines through ``downloader.step`` and yields results as works finish."""

    def __init__(
        self,
        downloader: Downloader,
        *,
        workers: int,
        defer_after_s: float | None = 1.0,
        max_threads: int | None = None,
        max_parked: int = 20_000,
    ) -> None:
        self.downloader = downloader
        self.workers = workers
        self.defer_after_s = defer_after_s
        self.max_threads = max_threads or max(workers * 4, workers + 8)
        self.max_parked = max_parked
        self.slots = threading.Semaphore(workers)
        self._hosts_counted = 0.0

    def _publish(self, heap: list[_Due]) -> None:
        """Tell the run's statistics how many works wait, and for how many hosts (progress)."""
        stats = self.downloader.stats
        stats.parked = len(heap)
        now = time.monotonic()
        if now - self._hosts_counted > 1.0 or not heap:  # the host count is O(n): at most 1/s
            self._hosts_counted = now
            stats.hosts_waiting = len(
                {slot[0] for due in heap for _, _, slot in due.parked.progress.parked if slot}
            )

    def _task(
        self, line: InputLine, parked: Parked | None, dry_run: bool
    ) -> DownloadResult | Parked:
        with waiting.holding(self.slots):
            return self.downloader.step(
                line, dry_run=dry_run, parked=parked, defer_after_s=self.defer_after_s
            )

    def run(self, lines: Iterator[InputLine], *, dry_run: bool = False) -> Iterator[DownloadResult]:
        """Yield one result per input line (parked works included, when they finish)."""
        from oafetch.downloader import Parked

        cancel = self.downloader.cancel
        seq = itertools.count()
        heap: list[_Due] = []
        # Finished tasks arrive here (one callback each): waiting for the next is O(1), where
        # concurrent.futures.wait would lock and unlock every running future on every call.
        finished: queue.SimpleQueue[Future[DownloadResult | Parked]] = queue.SimpleQueue()
        running = 0
        input_left = True
        with ThreadPoolExecutor(self.max_threads, thread_name_prefix="oafetch-work") as pool:

            def start(line: InputLine, parked: Parked | None) -> None:
                nonlocal running
                pool.submit(self._task, line, parked, dry_run).add_done_callback(finished.put)
                running += 1

            while True:
                now = time.monotonic()
                action = next_action(
                    now=now,
                    running=running,
                    max_threads=self.max_threads,
                    parked_due=heap[0].not_before if heap else None,
                    parked_count=len(heap),
                    max_parked=self.max_parked,
                    input_left=input_left,
                    stopping=cancel.is_set(),
                    headroom=self.workers,
                )
                if action == "resume":
                    due = heapq.heappop(heap)
                    self._publish(heap)
                    start(due.parked.line, due.parked)
                    continue
                if action == "admit":
                    line = next(lines, None)
                    if line is None:
                        input_left = False
                    else:
                        start(line, None)
                    continue
                if action == "done":
                    for due in heap:  # interrupted: parked works end as cancelled
                        yield self.downloader.abandon(due.parked)
                    return
                timeout = max(0.0, heap[0].not_before - now) if heap else None
                if not running:
                    cancel.wait(timeout)
                    continue
                try:
                    done = [finished.get(timeout=timeout)]
                except queue.Empty:
                    continue
                while not finished.empty():
                    done.append(finished.get_nowait())
                running -= len(done)
                for future in done:
                    outcome = future.result()
                    if isinstance(outcome, Parked):
                        heapq.heappush(heap, _Due(outcome.not_before, next(seq), outcome))
                        self._publish(heap)
                    else:
                        yield outcome
