"""The HTTP cache: RFC 9111 (hishel) for metadata, landing pages and robots.txt.

:func:`build_cache` is what the :class:`~oafetch.downloader.Downloader` calls; it returns the
wrapper :class:`~oafetch.http.client.HttpClient` puts between the robots stage and the breaker::

    Guard → Robots → **CacheTransport** → Breaker → RateLimit → OTel CLIENT span → HTTPTransport

so a hit spends neither a breaker call nor a rate-limit token and makes no CLIENT span.

The modules of the cache, one job each:

* :mod:`oafetch.http.cache` (here): where the database lives, opening it, building the stage;
* :mod:`oafetch.http.cache_transport`: :class:`CacheTransport`, the stage that drives hishel;
* :mod:`oafetch.http.cache_policy`: admission, assumed freshness, keys, scrubbing (pure);
* :mod:`oafetch.http.cache_db`: ``oafetch cache stats|purge`` over the database.

The database (``<cache dir>/http-cache.sqlite``, hishel's schema, WAL) is shared by every
thread and process that uses the same directory; the default directory is
``platformdirs.user_cache_dir("oafetch")``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import platformdirs
from hishel import SqliteStorage

from oafetch.config import Config
from oafetch.errors import ConfigError
from oafetch.http.cache_policy import FreshnessRules
from oafetch.http.cache_transport import CacheTransport
from oafetch.telemetry.runtime import Telemetry

__all__ = [
    "DB_NAME",
    "CacheTransport",
    "CacheWrapper",
    "build_cache",
    "config_secrets",
    "database_path",
    "default_cache_dir",
    "open_storage",
]

log = logging.getLogger(__name__)

CacheWrapper = Callable[[httpx.BaseTransport], httpx.BaseTransport]

#: The database file inside the cache directory.
DB_NAME = "http-cache.sqlite"
_MIB = 1024 * 1024


def default_cache_dir() -> Path:
    """The per-user cache directory (``platformdirs.user_cache_dir("oafetch")``)."""
    return Path(platformdirs.user_cache_dir("oafetch"))


def database_path(directory: Path | None) -> Path:
    """The cache database inside ``directory`` (default: :func:`default_cache_dir`)."""
    return (directory or default_cache_dir()) / DB_NAME


def open_storage(
    path: Path, *, max_age_s: float, max_size_mb: float, max_entry_bytes: int
) -> SqliteStorage:
    """A hishel storage on ``path`` that any thread may use (one connection, hishel's lock).

    The connection is opened here rather than by hishel, which would also write a
    ``.gitignore`` into the directory (wrong for a user-chosen ``--cache-dir``).
    """
    connection = sqlite3.connect(
        str(path), check_same_thread=False, isolation_level=None, timeout=5.0
    )
    return SqliteStorage(
        connection=connection,
        default_ttl=max_age_s,
        max_size=int(max_size_mb * _MIB),
        max_stream_size=max_entry_bytes,
    )


def config_secrets(config: Config) -> tuple[str, ...]:
    """The credential values ``config`` knows (mailto, resolver keys and emails) to scrub."""
    found: list[str] = [config.mailto] if config.mailto else []
    for settings in config.resolvers.values():
        if settings.api_key is not None:
            found.append(settings.api_key.get_secret_value())
        if settings.email:
            found.append(settings.email)
        for key, value in (settings.model_extra or {}).items():
            if isinstance(value, str) and any(w in key for w in ("key", "token", "secret", "mail")):
                found.append(value)
    return tuple(dict.fromkeys(s for s in found if s))


def _check_database(path: Path) -> None:
    """Open (creating) the database once, so a bad ``cache.dir`` fails at start, clearly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(str(path), timeout=5.0)) as connection:
        connection.execute("PRAGMA schema_version")  # "file is not a database" surfaces here
    storage = open_storage(path, max_age_s=1.0, max_size_mb=1024.0, max_entry_bytes=1024)
    try:
        storage.get_entries("oafetch:probe")  # hishel creates the tables or refuses the file
    finally:
        storage.close()


def build_cache(config: Config, telemetry: Telemetry) -> CacheWrapper | None:
    """The cache stage for :class:`~oafetch.http.client.HttpClient`, or ``None`` (disabled).

    Each call of the returned wrapper opens its own connection to the shared database
    (``<cache.dir>/http-cache.sqlite``; default directory: the user cache directory), which
    other runs, threads and processes may use at the same time.

    Raises:
        ConfigError: ``cache.dir`` was given but cannot hold the database (a default
            directory that cannot be used only disables the cache, with a warning).
    """
    settings = config.cache
    if not settings.enabled:
        return None
    path = database_path(settings.dir)
    try:
        _check_database(path)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        if settings.dir is not None:
            raise ConfigError(f"cache.dir: cannot use {path} as the HTTP cache: {exc}") from None
        log.warning("oafetch: HTTP cache disabled: cannot use %s: %s", path, exc)
        return None
    rules = FreshnessRules(
        ttl_s=dict(settings.ttl_s),
        swr_s=dict(settings.stale_while_revalidate_s),
        default_ttl_s=settings.default_ttl_s,
        negative_ttl_s=settings.negative_ttl_s,
    )
    secrets = config_secrets(config)

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        storage = open_storage(
            path,
            max_age_s=settings.max_age_s,
            max_size_mb=settings.max_size_mb,
            max_entry_bytes=settings.max_entry_bytes,
        )
        return CacheTransport(
            inner,
            storage,
            rules=rules,
            telemetry=telemetry,
            secrets=secrets,
            max_entry_bytes=settings.max_entry_bytes,
            max_age_s=settings.max_age_s,
            body_deadline_s=min(config.download.max_body_s, config.fallback.per_source_timeout_s),
        )

    return wrap
