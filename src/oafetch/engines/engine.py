"""What every engine shares: the driver's collector, the run's shards, and the engine protocol.

An engine (:class:`~oafetch.engines.process_engine.ProcessEngine`,
:class:`~oafetch.engines.ray_engine.RayEngine`) schedules shards somewhere; the rest is here:
the collector that owns the output directory, cutting what is still to do into shards under one
trace context, and the context-manager protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Self

from oafetch.config import Config
from oafetch.downloader import new_run_id
from oafetch.engines.collect import Collector
from oafetch.engines.shards import Shard, make_shards
from oafetch.errors import ConfigError
from oafetch.telemetry.traces import new_trace_carrier
from oafetch.works import InputLine, as_lines, take

#: Works per shard, for every engine and ``oafetch run --shard-size``: enough to amortise a
#: worker's start (its HTTP stack, telemetry store), few enough to keep every worker busy.
DEFAULT_SHARD_SIZE = 100


class ShardEngine:
    """The driver's side of an engine: ``collector``, ``stats``, shards, ``with``.

    Subclasses set up their workers after calling ``__init__`` and implement ``run`` and
    ``close`` (which must close the collector).
    """

    def __init__(
        self,
        config: Config,
        *,
        engine: str,
        resume: bool,
        shard_size: int,
        run_id: str | None,
    ) -> None:
        if shard_size < 1:
            raise ConfigError(f"shard_size: must be >= 1 (got {shard_size})")
        self.config = config
        self.shard_size = shard_size
        self.run_id = run_id or new_run_id()
        self.collector = Collector(config, self.run_id, resume=resume, engine=engine)
        self.out_dir = self.collector.out_dir
        self.interrupted = False
        self._closed = False

    @property
    def stats(self) -> Any:
        """The run's :class:`~oafetch.runstats.RunStats` (as the driver has published it)."""
        return self.collector.stats

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> dict[str, Any]:
        raise NotImplementedError

    def shards(
        self, works: Iterable[Any], max_works: int | None
    ) -> tuple[dict[str, str], Iterator[Shard]]:
        """The run's trace carrier and the shards of what is still to do (works the output
        directory already holds are counted as resumed by the collector on the way)."""
        lines: Iterator[InputLine] = as_lines(works)
        if max_works is not None:
            lines = take(lines, max_works)
        carrier = new_trace_carrier()
        return carrier, make_shards(self.collector.pending(lines, carrier), self.shard_size)
