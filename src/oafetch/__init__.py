"""oafetch: find and download the open-access full text of scholarly works.

Politely (per-host rate limits, retries, breakers, robots.txt), verifiably (bytes classified,
sha256, atomic writes, a manifest) and observably (OpenTelemetry spans → SQLite/JSONL, OTLP,
Prometheus)::

    import oafetch
    cfg = oafetch.Config(mailto="you@example.org", out_dir="runs/a")
    with oafetch.Downloader(cfg) as dl:
        result = dl.fetch("10.1038/nature12373")
"""

from oafetch._version import __version__
from oafetch.config import Config
from oafetch.downloader import Downloader
from oafetch.errors import (
    ConfigError,
    FetchError,
    InputError,
    OafetchError,
    OutputDirLocked,
    ResolverError,
)
from oafetch.resolvers.base import Candidate, Resolver, WorkIds
from oafetch.results import DownloadResult
from oafetch.tokens import DedupeAction, FallbackOutcome, Kind, Outcome, Reason, Role, Status
from oafetch.works import IdKind, Work, parse_work, read_input

__all__ = [
    "Candidate",
    "Config",
    "ConfigError",
    "DedupeAction",
    "DownloadResult",
    "Downloader",
    "FallbackOutcome",
    "FetchError",
    "IdKind",
    "InputError",
    "Kind",
    "OafetchError",
    "Outcome",
    "OutputDirLocked",
    "Reason",
    "Resolver",
    "ResolverError",
    "Role",
    "Status",
    "Work",
    "WorkIds",
    "__version__",
    "parse_work",
    "read_input",
]
