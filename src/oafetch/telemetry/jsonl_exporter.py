"""The JSONL writer of the local store: ``<out>/spans.jsonl``, one finished span per line.

Each line is the record of :func:`oafetch.telemetry.mapping.to_record`: ``name``, ``kind``,
``trace_id``, ``span_id``, ``parent_span_id``, ``start_ns``, ``end_ns``, ``status``,
``attributes``, ``events`` (``name``, ``ts_ns``, ``attributes``) and ``resource``
(``service.name``). The file is appended to (a resumed run adds to it), a batch of lines at a
time with no buffer in between, so a reader (``tail -f``, ``jq``) sees whole lines.

Threads: as for the SQLite writer: one writer thread under the schema processor; a lock when
used as a plain ``SpanExporter``, which guarantees no loss only under the schema processor.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from oafetch import outdir
from oafetch.telemetry.mapping import Record, RunRecord, to_record

log = logging.getLogger(__name__)

#: File name of the span log inside the output directory.
JSONL_FILE = "spans.jsonl"

_encoder = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":"), default=str
)  # records are acyclic by construction


def _make_encode() -> Callable[[Any], str]:
    # ``JSONEncoder.encode`` builds a new C encoder for every call; build it once (the same
    # arguments ``JSONEncoder.iterencode`` passes it, so the output is identical).
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - an interpreter without the C accelerator
        return _encoder.encode
    c_encode = make(
        None,  # no cycle check
        _encoder.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        None,  # no indent
        _encoder.key_separator,
        _encoder.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )

    def encode(record: Any) -> str:
        return "".join(c_encode(record, 0))

    return encode


_encode = _make_encode()


class JsonlSpanExporter(SpanExporter):
    """Append span records to a JSON Lines file.

    Args:
        path: the file (created, with its directory, on first write).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._warned = False

    def _file(self) -> IO[str]:
        if self._fh is None:
            if self._closed:
                raise RuntimeError("JsonlSpanExporter is shut down")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # never appended through a link planted at the file's name
            self._fh = outdir.open_append(self.path, newline="\n")
        return self._fh

    def write(self, records: Sequence[Record]) -> None:
        """Append one line per record, straight to the file descriptor.

        All or nothing: bytes go to the OS without a Python-side buffer (a failed flush would
        keep them and write them again later, duplicating lines), and a write that fails part
        way (a full disk) is cut back to where it started, so no torn line remains.

        Raises:
            OSError: the write failed; nothing of ``records`` stays in the file.
        """
        if not records:
            return
        data = ("\n".join([_encode(r) for r in records]) + "\n").encode("utf-8")
        with self._lock:
            outdir.append_whole(self._file().fileno(), data)

    def begin_run(self, run: RunRecord) -> None:
        """Nothing to do: the run's span line is written when it ends."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans`` (an application's processor calls this). Never raises."""
        try:
            self.write([to_record(s) for s in spans])
        except Exception:
            if not self._warned:
                self._warned = True
                log.exception("oafetch: JSONL export failed; %d spans lost", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: every ``write`` flushes."""
        return True

    def shutdown(self) -> None:
        """Close the file (later writes raise). Idempotent."""
        with self._lock:
            self._closed = True
            if self._fh is not None:
                try:
                    self._fh.close()
                finally:
                    self._fh = None
