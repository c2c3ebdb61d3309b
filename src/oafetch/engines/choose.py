"""How many worker processes ``oafetch run`` uses when it is not told (``processes = "auto"``).

One process per core is the design's concurrency model: one Python process is bound by its
interpreter lock long before a link or a disk is busy. A batch runs in one process anyway when
more would not pay or would lose something the user asked for:

- the machine has one core;
- ``--list-only`` (it lists candidates, which only the one-process mode does);
- ``--metrics-port`` (the live ``/metrics`` endpoint is served by one process);
- the input is known to hold fewer than :data:`AUTO_MIN_WORKS` works: starting the workers
  (each imports oafetch and its OpenTelemetry SDK) and merging their telemetry costs more than
  a second core gives back on so short a batch (docs/BENCHMARKS.md § Every core).

An explicit ``--processes N`` (``processes = N``, ``OAFETCH_PROCESSES=N``) is always obeyed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

#: Fewer works than this (when the input says how many it holds) run in one process.
AUTO_MIN_WORKS = 1000


@dataclass(frozen=True)
class ProcessChoice:
    """How many worker processes a run uses, and why (said to the user when it is automatic)."""

    processes: int
    why: str


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def choose_processes(
    setting: int | Literal["auto"],
    *,
    cores: int,
    works: int | None,
    list_only: bool = False,
    metrics_port: int | None = None,
) -> ProcessChoice:
    """The processes a run uses for ``setting`` (``processes`` of the configuration).

    Args:
        setting: a number (obeyed) or ``"auto"``.
        cores: the machine's cores (:func:`machine_cores`).
        works: how many works the input holds, when known (a file); None when it streams.
        list_only: the run only lists candidates.
        metrics_port: the live metrics endpoint asked for, if any.
    """
    if setting != "auto":
        return ProcessChoice(int(setting), "as configured")
    if cores <= 1:
        return ProcessChoice(1, "one core")
    if list_only:
        return ProcessChoice(1, "--list-only runs in one process")
    if metrics_port is not None:
        return ProcessChoice(1, "--metrics-port is served by one process")
    if works is not None and works < AUTO_MIN_WORKS:
        return ProcessChoice(1, f"{works} works (fewer than {AUTO_MIN_WORKS})")
    return ProcessChoice(cores, "one per core")
