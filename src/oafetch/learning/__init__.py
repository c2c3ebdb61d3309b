"""Resolver order learned from telemetry: which source to ask first, per kind of work.

* :mod:`.keys` — what predicts a source's success before asking (DOI prefix, identifier kind,
  URL host; refined by the OA status a source reported).
* :mod:`.estimates` — an in-memory accumulator of attempts per source x key (fed by the run's
  own outcomes and by a store's history, loaded once at start) and its periodic snapshots.
* :mod:`.policy` — the pure decision: the order of sources for one work, and why.
* :mod:`.learner` — the run's learner the fallback asks and tells.
* :mod:`.report` — ``oafetch telemetry sources``.
"""

from oafetch.learning.learner import Learner

__all__ = ["Learner"]
