"""Run a batch on every core of one machine: shards in worker processes, one limiter for all.

The same pieces as the Ray engine (:mod:`oafetch.engines.shards`, :mod:`~.collect`,
:mod:`~.shared_limiter`), scheduled by a local process pool instead of a cluster: the driver
(this process) reads the input, skips what the output directory holds, cuts the rest into
shards and submits each to a pool of ``processes`` workers (``spawn``: a worker never inherits
the driver's threads or telemetry providers). Every worker's HTTP stack asks the driver's
limiter services for send reservations over a Unix socket (a ``multiprocessing`` manager
serving :class:`~.shared_limiter.LimiterService` from a thread of the driver), so each host's
budget holds for all processes together. Finished shards are published by the driver alone:
one manifest, one attempts file, one ``summary.json``, one merged telemetry store.

A worker that dies (killed, out of memory) breaks the pool: the driver starts a new pool and
runs the shards that had not come back again, in fresh staging directories (at most
``SHARD_RETRIES`` times each), so nothing is lost and nothing is published twice.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import BaseManager
from typing import Any

from oafetch.config import Config
from oafetch.engines.engine import DEFAULT_SHARD_SIZE, ShardEngine
from oafetch.engines.shards import Shard, ShardResult, run_shard
from oafetch.engines.shared_limiter import LimiterService, SharedRateLimiter
from oafetch.errors import ConfigError
from oafetch.results import DownloadResult

log = logging.getLogger("oafetch")

#: How often a shard whose worker died is run again.
SHARD_RETRIES = 3


class _LimiterManager(BaseManager):
    """Serves the run's limiter services to the worker processes."""


_LimiterManager.register("limiter", callable=None)

# the worker process's connection to the driver's limiter services (one per process)
_worker_limiters: list[Any] | None = None
_worker_lock = threading.Lock()


def _connect_limiters(address: str, authkey: bytes, count: int) -> list[Any]:
    global _worker_limiters
    with _worker_lock:
        if _worker_limiters is None:
            manager = _LimiterManager(address=address, authkey=authkey)
            manager.connect()
            _worker_limiters = [manager.limiter(i) for i in range(count)]  # type: ignore[attr-defined]
        return _worker_limiters


def _accept(server: Any) -> None:
    """Hand each worker's connection to the manager server until ``server.stop_event``."""
    while not server.stop_event.is_set():
        try:
            conn = server.listener.accept()
        except Exception:  # a failed handshake (the wake-up below, a stray client): not ours
            continue
        if server.stop_event.is_set():
            conn.close()
            return
        threading.Thread(target=server.handle_request, args=(conn,), daemon=True).start()


def _wake(address: str | None) -> None:
    """Connect once to the limiter socket, so that a blocked ``accept`` returns."""
    if address is None:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1.0)
        probe.connect(address)


def _ignore_interrupts() -> None:
    """A worker leaves Ctrl-C to the driver (the terminal sends it to the whole group): the
    driver stops handing out shards and lets the running ones finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(proxy: Any, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(proxy, method)(*args)


def _run_shard_task(
    shard: Shard,
    config: Config,
    out_dir: str,
    run_id: str,
    limiter_address: str | None,
    authkey: bytes,
    limiters: int,
    carrier: dict[str, str],
    dry_run: bool,
) -> ShardResult:
    limiter = None
    if limiter_address is not None:
        proxies = _connect_limiters(limiter_address, authkey, limiters)
        limiter = SharedRateLimiter(config, proxies, _call)
    return run_shard(
        shard,
        config,
        out_dir=out_dir,
        run_id=run_id,
        limiter=limiter,
        carrier=carrier,
        dry_run=dry_run,
        node=f"pid:{os.getpid()}",
    )


class ProcessEngine(ShardEngine):
    """A batch on ``processes`` local worker processes, with a local run's outputs.

    Args:
        config: the run's configuration.
        processes: worker processes (>= 1; the machine's cores is the usual choice).
        resume: skip works the output directory already holds, verified.
        shard_size: works per shard.
        limiters: limiter services (rate keys are hashed over them).
    """

    def __init__(
        self,
        config: Config,
        *,
        processes: int,
        resume: bool = True,
        shard_size: int = DEFAULT_SHARD_SIZE,
        limiters: int = 2,
        run_id: str | None = None,
    ) -> None:
        if processes < 1:
            raise ConfigError(f"processes: must be >= 1 (got {processes})")
        super().__init__(
            config, engine="processes", resume=resume, shard_size=shard_size, run_id=run_id
        )
        self.processes = processes
        #: Set to stop: no new shard is started, the running ones finish and are published.
        self.cancel = threading.Event()
        self._services = [LimiterService(config) for _ in range(limiters)]
        self._authkey = secrets.token_bytes(32)
        self._socket_dir = tempfile.mkdtemp(prefix="oafetch-limiter-")
        self._address: str | None = None
        self._server_thread: threading.Thread | None = None
        self._server: Any = None
        if config.politeness.enabled:
            self._serve_limiters()
        self._pool: ProcessPoolExecutor | None = None

    # -- the limiter services ---------------------------------------------------------------
    def _serve_limiters(self) -> None:
        services = self._services
        manager = _LimiterManager(
            address=os.path.join(self._socket_dir, "limiter.sock"), authkey=self._authkey
        )
        manager.register("limiter", callable=lambda i: services[i])
        self._server = manager.get_server()
        self._address = str(self._server.address)
        # an accept loop of our own (the server's serve_forever resets sys.stdout and exits, its
        # accepter never ends: closing the listener does not wake a blocked accept)
        self._server.stop_event = threading.Event()
        self._server_thread = threading.Thread(
            target=_accept, args=(self._server,), name="oafetch-limiter", daemon=True
        )
        self._server_thread.start()

    # -- the run --------------------------------------------------------------------------------
    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_ignore_interrupts,
        )

    def run(
        self, works: Iterable[Any], *, dry_run: bool = False, max_works: int | None = None
    ) -> Iterator[DownloadResult]:
        """Run the works on the worker processes; yield each result as its shard is published."""
        carrier, shards = self.shards(works, max_works)
        limit = 2 * self.processes
        running: dict[Future[ShardResult], tuple[Shard, int]] = {}
        self._pool = self._new_pool()

        def submit(shard: Shard, tries: int) -> None:
            assert self._pool is not None
            future = self._pool.submit(
                _run_shard_task,
                shard,
                self.config,
                str(self.out_dir),
                self.run_id,
                self._address,
                self._authkey,
                len(self._services),
                carrier,
                dry_run,
            )
            running[future] = (shard, tries)

        try:
            for shard in shards:
                yield from self.collector.take_resumed()
                while len(running) >= limit:
                    yield from self._publish_next(running, submit)
                if self.cancel.is_set():
                    break
                submit(shard, 0)
            yield from self.collector.take_resumed()
            while running:
                yield from self._publish_next(running, submit)
            if self.cancel.is_set():
                self.interrupted = True
        except BaseException:
            self.interrupted = True
            for future in running:
                future.cancel()
            raise

    def _publish_next(
        self, running: dict[Future[ShardResult], tuple[Shard, int]], submit: Any
    ) -> Iterator[DownloadResult]:
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        broken: list[tuple[Shard, int]] = []
        for future in done:
            shard, tries = running.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool:
                broken.append((shard, tries))
                continue
            yield from self.collector.publish(result)
        if broken:
            # a worker died: the shards that came back are published, every other one still in
            # the pool is lost with it and runs again
            for future in list(running):
                shard, tries = running.pop(future)
                if future.done() and not future.cancelled() and future.exception() is None:
                    yield from self.collector.publish(future.result())
                else:
                    broken.append((shard, tries))
            assert self._pool is not None
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            for shard, tries in broken:
                if tries >= SHARD_RETRIES:
                    raise RuntimeError(
                        f"shard {shard.index}: its worker process died {tries + 1} times"
                    )
                log.warning("shard %s: its worker process died; running it again", shard.index)
                submit(shard, tries + 1)

    def close(self) -> dict[str, Any]:
        """Stop the workers, write ``summary.json``, release the output directory."""
        if self._closed:
            return {}
        self._closed = True
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            return self.collector.close(interrupted=self.interrupted)
        finally:
            if self._server is not None:
                self._server.stop_event.set()
                _wake(self._address)  # the accept loop returns, sees the stop, ends
                if self._server_thread is not None:
                    self._server_thread.join(timeout=5)
                self._server.listener.close()
            try:
                for name in os.listdir(self._socket_dir):
                    os.unlink(os.path.join(self._socket_dir, name))
                os.rmdir(self._socket_dir)
            except OSError:
                pass


__all__ = ["DEFAULT_SHARD_SIZE", "ProcessEngine"]
