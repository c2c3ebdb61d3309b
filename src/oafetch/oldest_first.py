"""A thread pool that runs the tasks of the oldest work first.

The sources of a parallel tier run on one pool shared by every work of a run. With a first-in,
first-out queue, a work that finished one tier queues its next tier's sources behind the first
tier of every work that started after it: at a batch's start, when every worker's work asks the
same rate-limited APIs at once, the first works reach their last tiers (and the hosts there,
often the run's busiest) seconds late. Here each task carries its work's order of arrival and
the pool always starts the task of the oldest work waiting, so works in flight finish before
new ones take the threads (what keeps a run's latency per work low, and its slowest host fed).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = float("inf")  # the order of the stop marks: after every task


class OldestFirstPool:
    """``max_workers`` threads (started as tasks come) taking the task of the lowest order."""

    def __init__(self, max_workers: int, *, thread_name_prefix: str = "oafetch-pool") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1 (got {max_workers})")
        self._max = max_workers
        self._prefix = thread_name_prefix
        self._tasks: queue.PriorityQueue[tuple[float, int, Any]] = queue.PriorityQueue()
        self._seq = itertools.count()  # ties keep the order of submission
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, order: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` once no task of a lower ``order`` waits; its result in a future."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._tasks.put((order, next(self._seq), (future, fn, args)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            try:
                order, _, item = self._tasks.get_nowait()
            except queue.Empty:  # idle: the next task submitted needs no new thread
                self._idle.release()
                order, _, item = self._tasks.get()
            if order == _STOP:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # the future carries it, as an executor's does
                    future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more tasks; with ``cancel_futures`` the waiting ones are cancelled, else they
        still run. With ``wait``, returns once every thread ended."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    _, _, item = self._tasks.get_nowait()
                except queue.Empty:
                    break
                item[0].cancel()
        for _ in threads:
            self._tasks.put((_STOP, next(self._seq), None))
        if wait:
            for thread in threads:
                thread.join()
