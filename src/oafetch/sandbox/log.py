"""The sandbox's request log: every request served, in memory and optionally as JSONL.

Entries are plain dicts with the keys in `FIELDS`. The Authorization header is reduced to a
boolean; no credential is ever recorded. An entry enters the in-memory log before its response
is written (so a client holding a response always finds it) and its JSONL line is written, and
flushed, once the body has gone out with the true byte count. Thread-safe.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

FIELDS = (
    "ts",
    "service",
    "host",
    "port",
    "method",
    "path",
    "status",
    "bytes_sent",
    "throttled",
    "user_agent",
    "if_none_match",
    "if_modified_since",
    "has_authorization",
    "range",
)


class RequestLog:
    """An append-only list of request records, mirrored to a JSONL file when given a path."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.open()

    def open(self) -> None:
        """(Re)open the JSONL file for appending, if there is one and it is closed."""
        with self._lock:
            if self.path is not None and self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")

    def record(self, entry: dict[str, Any]) -> None:
        """Append one entry to the in-memory log (the JSONL line waits for `commit`)."""
        with self._lock:
            self._entries.append(entry)

    def commit(self, entry: dict[str, Any], bytes_sent: int) -> None:
        """Settle a recorded entry's byte count and write its JSONL line."""
        with self._lock:
            entry["bytes_sent"] = bytes_sent
            if self._file is not None:
                self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self._file.flush()

    def entries(self) -> list[dict[str, Any]]:
        """A copy of every entry so far, oldest first."""
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        """Forget the in-memory entries (the JSONL file keeps its lines)."""
        with self._lock:
            self._entries.clear()

    def close(self) -> None:
        """Close the JSONL file, if any (`open` reopens it)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
