"""Stored files published to an object store or any fsspec filesystem (``files_to``).

With ``files_to = "s3://bucket/corpus"`` (or ``gs://…``, ``file:///…``: any URL fsspec knows),
a run's files end up at ``<files_to>/<relpath>`` — the same relative path the manifest records —
while the output directory keeps the manifest, ``attempts.csv``, the state and the telemetry.
Each engine worker publishes the files of its shard once they have passed every check (bytes,
sha256, identity), then drops its staged copy; the driver writes the manifest rows after that,
so a row never names an object that is not whole. A put is idempotent: the key is the file's
relative path, so a shard run twice, or a work fetched again after a driver died, writes the
same verified bytes to the same key.

Object stores write an object whole or not at all; on a filesystem (``file://``, a mounted
share) the file is written under a temporary name and renamed. After each put the object's size
is read back. A file that cannot be published (after retries) stays in the output directory
with its row, and the next run over the same directory publishes it.

Options for the filesystem (``files_options``: ``endpoint_url``, ``anon``, a profile …) are
passed to fsspec; credentials belong in the environment (``AWS_ACCESS_KEY_ID`` …) or the
provider's config files, and nothing of the options is ever logged or written.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from oafetch.errors import ConfigError, OafetchError
from oafetch.urls import redact_url

log = logging.getLogger("oafetch")

#: Protocols that are object stores (a put is atomic: no temporary name needed).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "r2"})
PUT_ATTEMPTS = 4


class PublishError(OafetchError):
    """A file could not be published to ``files_to`` (the message names file and target)."""


class ObjectStore:
    """Where a run's files are published: ``url`` (``s3://bucket/prefix``) through fsspec.

    Raises:
        ConfigError: fsspec (or the protocol's package, e.g. s3fs) is missing, or the URL is
            not one fsspec knows.
    """

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        try:
            import fsspec
        except ImportError:
            raise ConfigError(
                f"files_to = {redact_url(url)!r} needs fsspec: pip install 'oafetch[s3]'"
            ) from None
        protocol = url.split("://", 1)[0] if "://" in url else ""
        if not protocol:
            raise ConfigError(
                f"files_to = {url!r}: give a URL with its scheme (s3://bucket/prefix, "
                "gs://…, file:///abs/path)"
            )
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **dict(options or {}))
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"files_to = {redact_url(url)!r}: {exc} (for s3:// install 'oafetch[s3]')"
            ) from None
        self.root = root.rstrip("/")
        self.atomic_put = protocol in OBJECT_STORES

    def url_of(self, relpath: str) -> str:
        """The URL of the object ``relpath`` is published as."""
        return f"{self.url}/{relpath}"

    def _key(self, relpath: str) -> str:
        return f"{self.root}/{relpath}"

    def publish(self, local: Path, relpath: str, size: int) -> str:
        """Put ``local`` at ``relpath`` (retried), check its size; return its URL.

        Raises:
            PublishError: still failing after retries.
        """
        key = self._key(relpath)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(PUT_ATTEMPTS),
                wait=wait_exponential(multiplier=0.2, max=5),
                retry=retry_if_exception_type(Exception),
                reraise=True,
            ):
                with attempt:
                    self._put(local, key)
                    found = self.fs.info(key).get("size")
                    if found != size:
                        raise PublishError(f"{self.url_of(relpath)}: {found} bytes, not {size}")
        except Exception as exc:
            raise PublishError(
                f"could not publish {local.name} to {redact_url(self.url_of(relpath))}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return self.url_of(relpath)

    def _put(self, local: Path, key: str) -> None:
        parent = key.rsplit("/", 1)[0]
        if self.atomic_put:
            self.fs.put_file(str(local), key)
            return
        self.fs.makedirs(parent, exist_ok=True)
        temp = f"{parent}/.{key.rsplit('/', 1)[1]}.part-{secrets.token_hex(4)}"
        try:
            self.fs.put_file(str(local), temp)
            self.fs.mv(temp, key)
        finally:
            if self.fs.exists(temp):
                self.fs.rm_file(temp)

    def size(self, relpath: str) -> int | None:
        """The size of the published object, or None when there is none."""
        try:
            return int(self.fs.info(self._key(relpath))["size"])
        except (FileNotFoundError, KeyError):
            return None

    def publish_rows(
        self, staging: Path, rows: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Publish every file the rows name under ``staging``; return the rows (those published
        carry ``object``: their URL) and the messages of those that failed (kept staged)."""
        published: dict[str, str] = {}
        failed: list[str] = []
        out: list[dict[str, Any]] = []
        for row in rows:
            relpath = row.get("path")
            local = staging / relpath if relpath else None
            if relpath and relpath not in published and local is not None and local.is_file():
                try:
                    published[relpath] = self.publish(local, relpath, local.stat().st_size)
                    local.unlink()
                except PublishError as exc:
                    log.warning("%s", exc)
                    failed.append(str(exc))
            if relpath in published:
                row = {**row, "object": published[relpath]}
            out.append(row)
        return out, failed
