"""Run a batch on a cluster engine: the engine-neutral seam and its engines.

A batch is cut into :class:`~oafetch.engines.shards.Shard` s (a few hundred works each). A worker
runs a shard with an ordinary :class:`~oafetch.Downloader` in a private *staging* directory,
with a rate limiter shared by the whole cluster; the driver then publishes the shard's files
into the output directory and appends its manifest and attempt rows
(:mod:`oafetch.engines.collect`). An engine (:mod:`oafetch.engines.ray_engine`) only decides
where shards run, retries the ones whose worker died, and hosts the shared limiter.
"""

from __future__ import annotations

ENGINES = ("local", "ray")
