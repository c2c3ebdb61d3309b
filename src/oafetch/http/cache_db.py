"""Inspecting and trimming the HTTP cache database: what ``oafetch cache stats|purge`` run.

The database is hishel's (``entries``: one row per stored answer, its request and response
heads packed with msgpack; ``streams``: the body in chunks). oafetch adds two headers to each
stored *request* (never sent): ``x-oafetch-role`` and ``x-oafetch-stored-at`` (epoch seconds),
which give the per-role counts and the ages used by ``--older-than``. Entries stored without
them (by another tool) fall back to the response ``Date``.

These functions open their own short-lived connection and may run while downloads use the
same file (WAL; a purged entry that a run is reading is fetched again by that run).
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]  # hishel's own dependency and format

from oafetch.errors import OafetchError
from oafetch.http.cache_policy import ROLE_HEADER, STORED_AT_HEADER, http_date
from oafetch.urls import host_of


class CacheDBError(OafetchError):
    """The cache database cannot be read or changed (not a cache database, locked, corrupt)."""


_COLUMNS = {
    "id", "cache_key", "data", "expires_at", "last_accessed_at", "chunk_count", "ttl_deadline",
    "tti",
}  # fmt: skip


@dataclass(frozen=True)
class CacheEntry:
    """One stored answer, as ``stats``/``purge`` see it (never the credentials: none are kept)."""

    id: bytes
    url: str
    host: str
    role: str | None
    status: int | None
    stored_at: float | None
    live: bool  # complete and not expired (a lookup may return it)
    body_bytes: int


@dataclass(frozen=True)
class CacheStats:
    """What ``oafetch cache stats`` reports."""

    path: str
    exists: bool
    entries: int = 0  # live entries
    expired: int = 0  # expired or half-written rows that cleanup has not removed yet
    file_bytes: int = 0  # database + WAL on disk
    body_bytes: int = 0  # stored bodies of live entries
    hosts: dict[str, int] = field(default_factory=dict)
    roles: dict[str, int] = field(default_factory=dict)
    oldest: float | None = None  # epoch seconds of the oldest live entry
    newest: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``oldest``/``newest`` also as ISO 8601 UTC)."""
        data = asdict(self)
        for key in ("oldest", "newest"):
            value = data[key]
            data[f"{key}_iso"] = _iso(value) if value is not None else None
        return data


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        connection = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise CacheDBError(f"cannot open {path}: {exc}") from None
    with closing(connection):
        try:
            columns = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
        except sqlite3.DatabaseError as exc:
            raise CacheDBError(f"{path} is not an oafetch cache database: {exc}") from None
        if columns and columns != _COLUMNS:
            raise CacheDBError(f"{path} is not an oafetch cache database")
        connection.execute("PRAGMA foreign_keys=ON")
        yield connection


def _first(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return str(value) if value is not None else None


def _decode(data: bytes) -> tuple[str, Mapping[str, Any], int | None, Mapping[str, Any]]:
    packed = msgpack.unpackb(data)
    request, response = packed.get("request", {}), packed.get("response", {})
    status = response.get("status_code")
    return (
        str(request.get("url", "")),
        request.get("headers") or {},
        int(status) if isinstance(status, int) else None,
        response.get("headers") or {},
    )


def _entries(connection: sqlite3.Connection, now: float) -> list[CacheEntry]:
    if not _has_tables(connection):
        return []
    sizes = dict(
        connection.execute(
            "SELECT entry_id, SUM(LENGTH(chunk_data)) FROM streams GROUP BY entry_id"
        ).fetchall()
    )
    found: list[CacheEntry] = []
    rows = connection.execute(
        "SELECT id, data, expires_at, chunk_count, last_accessed_at FROM entries"
    ).fetchall()
    for id_, data, expires_at, chunk_count, last_accessed in rows:
        try:
            url, req_headers, status, resp_headers = _decode(bytes(data))
        except Exception:  # undecodable row: count it, attribute it to no host
            url, req_headers, status, resp_headers = "", {}, None, {}
        stored = _first(req_headers, STORED_AT_HEADER)
        try:
            stored_at = float(stored) if stored else None
        except ValueError:
            stored_at = None
        if stored_at is None:
            stored_at = http_date(_first(resp_headers, "date")) or last_accessed
        found.append(
            CacheEntry(
                id=bytes(id_),
                url=url,
                host=host_of(url),
                role=_first(req_headers, ROLE_HEADER),
                status=status,
                stored_at=stored_at,
                live=chunk_count is not None and (expires_at is None or expires_at > now),
                body_bytes=int(sizes.get(id_, 0) or 0),
            )
        )
    return found


def _has_tables(connection: sqlite3.Connection) -> bool:
    names = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    return {"entries", "streams"} <= names


def _file_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            total += candidate.stat().st_size
    return total


def read_entries(path: Path, *, now: float | None = None) -> list[CacheEntry]:
    """Every row of the cache database at ``path`` (``[]`` if there is none).

    Raises:
        CacheDBError: ``path`` exists but is not an oafetch (hishel 2) cache database.
    """
    if not path.exists():
        return []
    with _connect(path) as connection:
        return _entries(connection, time.time() if now is None else now)


def stats(path: Path, *, now: float | None = None) -> CacheStats:
    """Entries, sizes, per-host and per-role counts, oldest/newest of the cache at ``path``.

    Raises:
        CacheDBError: ``path`` exists but is not an oafetch cache database.
    """
    if not path.exists():
        return CacheStats(path=str(path), exists=False)
    entries = read_entries(path, now=now)
    live = [e for e in entries if e.live]
    ages = [e.stored_at for e in live if e.stored_at is not None]
    return CacheStats(
        path=str(path),
        exists=True,
        entries=len(live),
        expired=len(entries) - len(live),
        file_bytes=_file_bytes(path),
        body_bytes=sum(e.body_bytes for e in live),
        hosts=dict(Counter(e.host or "?" for e in live).most_common()),
        roles=dict(Counter(e.role or "?" for e in live).most_common()),
        oldest=min(ages) if ages else None,
        newest=max(ages) if ages else None,
    )


def host_matches(entry_host: str, wanted: str) -> bool:
    """``wanted`` names ``entry_host`` or one of its parent domains (case-insensitive)."""
    entry_host, wanted = entry_host.lower().rstrip("."), wanted.lower().strip().rstrip(".")
    return entry_host == wanted or entry_host.endswith("." + wanted)


def purge(
    path: Path,
    *,
    hosts: Sequence[str] = (),
    older_than_s: float | None = None,
    now: float | None = None,
) -> int:
    """Delete entries (all, or those of ``hosts`` and/or stored more than ``older_than_s`` ago).

    With no filter the database is emptied and compacted. Returns how many rows were deleted.

    Raises:
        CacheDBError: ``path`` exists but is not an oafetch cache database.
    """
    if not path.exists():
        return 0
    now = time.time() if now is None else now
    with _connect(path) as connection:
        if not _has_tables(connection):
            return 0
        if not hosts and older_than_s is None:
            (count,) = connection.execute("SELECT COUNT(*) FROM entries").fetchone()
            _delete(connection, path, None)
            return int(count)
        doomed = [
            e.id
            for e in _entries(connection, now)
            if (not hosts or any(host_matches(e.host, h) for h in hosts))
            and (older_than_s is None or (e.stored_at or now) < now - older_than_s)
        ]
        _delete(connection, path, [(id_,) for id_ in doomed])
        return len(doomed)


def _delete(connection: sqlite3.Connection, path: Path, ids: list[tuple[bytes]] | None) -> None:
    """Delete ``ids`` (``None``: every entry) in one transaction, then compact."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            if ids is None:
                connection.execute("DELETE FROM streams")
                connection.execute("DELETE FROM entries")
            else:
                connection.executemany("DELETE FROM streams WHERE entry_id = ?", ids)
                connection.executemany("DELETE FROM entries WHERE id = ?", ids)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise CacheDBError(f"cannot purge {path}: {exc}") from None
    _compact(connection)


def _compact(connection: sqlite3.Connection) -> None:
    """Give the space back (best effort: another process may hold the database)."""
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("VACUUM")
    except sqlite3.OperationalError:
        pass
