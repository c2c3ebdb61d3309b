"""Run a batch on a Ray cluster: shards as Ray tasks, one rate budget per host as Ray actors.

The driver (this process) reads the input, skips what the output directory already holds, cuts
the rest into shards and submits each as a task (retried by Ray when its worker or node dies).
Every worker's HTTP stack asks the limiter actors for send reservations; the actors are pinned
to the driver's node, so they live exactly as long as the run. Finished shards are published by
the driver alone (:class:`~oafetch.engines.collect.Collector`): one manifest, one attempts
file, one ``summary.json``.

``address``: ``"local"`` starts a private single-node Ray on loopback (no dashboard),
``"auto"`` joins the cluster this machine belongs to, ``"ray://host:10001"`` a remote one. A
process already connected to Ray (``ray.init`` done by the caller) is used as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from oafetch.config import Config
from oafetch.engines.engine import DEFAULT_SHARD_SIZE, ShardEngine
from oafetch.engines.shards import ADMITTED, Shard, ShardResult, run_shard_stages
from oafetch.engines.shared_limiter import LimiterService, SharedRateLimiter
from oafetch.errors import ConfigError
from oafetch.results import DownloadResult

log = logging.getLogger("oafetch")

#: Limiter actors; rate keys are spread over them by hash.
DEFAULT_LIMITERS = 2
#: Concurrent calls one limiter actor serves (threads; the limiter itself is lock-protected).
LIMITER_CONCURRENCY = 64
#: How often Ray re-runs a shard whose worker or node died.
SHARD_RETRIES = 3
#: CPUs a shard task holds: a CPU runs one shard taking works and the last works of another.
SHARD_CPUS = 0.5


def connect(address: str) -> bool:
    """Connect this process to Ray; return True when this call started Ray (to shut down)."""
    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(
            address="local",  # a new instance even where `ray start` made one
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
        return True
    if address != "auto" and not address.startswith("ray://") and ":" not in address:
        raise ConfigError(
            f"--address: expected auto, local, ray://HOST:PORT or HOST:PORT (got {address!r})"
        )
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    return True


def _call(actor: Any, method: str, args: tuple[Any, ...]) -> Any:
    return ray.get(getattr(actor, method).remote(*args))


def _tell(actor: Any, method: str, args: tuple[Any, ...]) -> None:
    getattr(actor, method).remote(*args)


def _run_shard_task(
    shard: Shard,
    config: Config,
    out_dir: str,
    run_id: str,
    limiters: list[Any],
    carrier: dict[str, str],
    dry_run: bool,
) -> Iterator[str | ShardResult]:
    """A Ray generator task: yields ``ADMITTED`` then the shard's result (always two objects,
    as a retried generator must)."""
    limiter = SharedRateLimiter(config, limiters, _call, tell=_tell) if limiters else None
    yield from run_shard_stages(
        shard,
        config,
        out_dir=out_dir,
        run_id=run_id,
        limiter=limiter,
        carrier=carrier,
        dry_run=dry_run,
        node=ray.get_runtime_context().get_node_id(),
    )


class RayEngine(ShardEngine):
    """A batch on Ray, with the outputs and guarantees of a local run.

    Args:
        config: the run's configuration (``out_dir`` on a filesystem every node shares).
        address: ``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT`` (see module doc).
        resume: skip works the output directory already holds, verified.
        shard_size: works per task.
        limiters: limiter actors (rate keys are hashed over them).
    """

    def __init__(
        self,
        config: Config,
        *,
        address: str = "auto",
        resume: bool = True,
        shard_size: int = DEFAULT_SHARD_SIZE,
        limiters: int = DEFAULT_LIMITERS,
        run_id: str | None = None,
    ) -> None:
        if limiters < 1:
            raise ConfigError(f"limiters: must be >= 1 (got {limiters})")
        if shard_size < 1:
            raise ConfigError(f"shard_size: must be >= 1 (got {shard_size})")
        self._started_ray = connect(address)
        try:
            super().__init__(
                config, engine="ray", resume=resume, shard_size=shard_size, run_id=run_id
            )
        except BaseException:
            self._shutdown_ray()
            raise
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        actor = ray.remote(LimiterService).options(
            num_cpus=0, max_concurrency=LIMITER_CONCURRENCY, scheduling_strategy=here
        )
        self.limiters: list[Any] = [actor.remote(config) for _ in range(limiters)]

    def run(
        self,
        works: Iterable[Any],
        *,
        dry_run: bool = False,
        max_works: int | None = None,
        max_in_flight: int | None = None,
    ) -> Iterator[DownloadResult]:
        """Run the works on the cluster; yield each result as its shard is published.

        Each CPU takes new works from one shard at a time (``max_in_flight`` shards taking
        works, at most, over the cluster); once a shard's last work is under way, the next
        shard starts beside its last works (a task holds half a CPU), so the fallback chain
        never drains at a shard's boundary.
        """
        task = ray.remote(_run_shard_task).options(
            max_retries=SHARD_RETRIES,
            num_cpus=SHARD_CPUS,
            num_returns="streaming",
            scheduling_strategy="SPREAD",
        )
        config_ref = ray.put(self.config)
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        limit = max_in_flight or max(1, int(cpus))
        carrier, shards = self.shards(works, max_works)
        running: dict[Any, bool] = {}  # shard task -> its works are all under way
        try:
            for shard in shards:
                yield from self.collector.take_resumed()
                while sum(not admitted for admitted in running.values()) >= limit:
                    yield from self._advance(running)
                stages = task.remote(
                    shard,
                    config_ref,
                    str(self.out_dir),
                    self.run_id,
                    self.limiters,
                    carrier,
                    dry_run,
                )
                running[stages] = False
            yield from self.collector.take_resumed()
            while running:
                yield from self._advance(running)
        except BaseException:
            self.interrupted = True
            for stages in running:
                ray.cancel(stages, force=True)
            raise

    def _advance(self, running: dict[Any, bool]) -> Iterator[DownloadResult]:
        """Take the next stage some shard task reached: mark it admitted, or publish it."""
        ready: list[Any] = ray.wait(list(running), num_returns=1)[0]
        for stages in ready:
            stage: Any = ray.get(next(stages))
            if stage == ADMITTED:
                running[stages] = True
                continue
            del running[stages]
            yield from self.collector.publish(stage)

    def close(self) -> dict[str, Any]:
        """Write ``summary.json``, release the output directory, stop the limiter actors."""
        if self._closed:
            return {}
        self._closed = True
        try:
            return self.collector.close(interrupted=self.interrupted)
        finally:
            for actor in self.limiters:
                ray.kill(actor)
            self._shutdown_ray()

    def _shutdown_ray(self) -> None:
        if self._started_ray:
            ray.shutdown()
