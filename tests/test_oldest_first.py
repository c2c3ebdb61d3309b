"""The source pool: the oldest work's tasks first, futures like an executor's."""

from __future__ import annotations

import threading

import pytest

from oafetch.oldest_first import OldestFirstPool


def test_a_freed_thread_takes_the_task_of_the_oldest_work() -> None:
    pool = OldestFirstPool(1)
    gate, ran = threading.Event(), []
    busy = pool.submit(0, gate.wait, 30)
    # submitted newest work first: a first-in, first-out pool would run 7, 2, 5
    futures = [pool.submit(order, ran.append, order) for order in (7, 2, 5)]
    gate.set()
    for future in (busy, *futures):
        future.result(timeout=30)
    assert ran == [2, 5, 7]
    pool.shutdown()


def test_one_works_tasks_keep_their_order_of_submission() -> None:
    pool = OldestFirstPool(1)
    gate, ran = threading.Event(), []
    pool.submit(0, gate.wait, 30)
    futures = [pool.submit(3, ran.append, name) for name in ("a", "b", "c")]
    gate.set()
    for future in futures:
        future.result(timeout=30)
    assert ran == ["a", "b", "c"]
    pool.shutdown()


def test_no_more_threads_than_asked_and_errors_come_back_through_the_future() -> None:
    pool = OldestFirstPool(2)
    gate = threading.Event()
    running, lock, peak = [0], threading.Lock(), [0]

    def task() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(30)
        with lock:
            running[0] -= 1

    futures = [pool.submit(i, task) for i in range(5)]
    gate.set()
    for future in futures:
        future.result(timeout=30)
    assert peak[0] == 2

    def fail() -> None:
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke"):
        pool.submit(9, fail).result(timeout=30)
    pool.shutdown()


def test_shutdown_cancels_what_waits_and_refuses_new_tasks() -> None:
    pool = OldestFirstPool(1)
    gate, started = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait(30)

    running = pool.submit(0, hold)
    assert started.wait(30)
    waiting = pool.submit(1, gate.wait, 30)
    releaser = threading.Timer(0.2, gate.set)
    releaser.start()
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) is True
    assert waiting.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(2, gate.wait, 1)
    with pytest.raises(ValueError, match="at least 1"):
        OldestFirstPool(0)
