"""Deterministic, valid-looking PDF files for the sandbox corpus.

Every file starts with ``%PDF-1.7\\n``, holds a page whose text names the work, a binary stream
of filler bytes sized to reach the target length, a cross-reference table with true offsets,
and ends with ``%%EOF\\n``. Filler bytes come from one seeded pool, so building a file costs a
slice and a join, and the same (seed, key, size) always gives the same bytes. Oversized files
are never built in memory: `oversized_chunks` streams them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
_POOL_BYTES = 1 << 20
_MIN_FILLER = 64


def _escape(text: str) -> str:
    """Escape a string for a PDF literal and keep it ASCII."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


class PdfFactory:
    """Builds the corpus's PDF files from one seeded filler pool.

    Thread-safe: after construction it only reads its pool.
    """

    def __init__(self, seed: int) -> None:
        self._pool = random.Random(f"sandbox-pdf-pool-{seed}").randbytes(_POOL_BYTES)

    def _filler(self, offset: int, length: int) -> bytes:
        """`length` pool bytes starting at `offset`, wrapping round the pool."""
        pool = self._pool
        start = offset % len(pool)
        if start + length <= len(pool):
            return pool[start : start + length]
        parts = [pool[start:]]
        remaining = length - len(parts[0])
        while remaining > 0:
            parts.append(pool[: min(remaining, len(pool))])
            remaining -= len(parts[-1])
        return b"".join(parts)

    def build(self, key: str, title: str, size: int, offset: int) -> bytes:
        """A PDF of exactly `size` bytes naming `key` and `title`.

        When `size` is below the fixed overhead of the structure (about 900 bytes) the result
        is the smallest file that fits instead.
        """
        filler_len = _MIN_FILLER
        for _ in range(4):  # the /Length and startxref digits move the overhead; settle
            head, tail = self._frame(key, title, filler_len)
            wanted = max(_MIN_FILLER, size - len(head) - len(tail))
            if wanted == filler_len:
                break
            filler_len = wanted
        head, tail = self._frame(key, title, filler_len)
        return b"".join((head, self._filler(offset, filler_len), tail))

    def _frame(self, key: str, title: str, filler_len: int) -> tuple[bytes, bytes]:
        """The bytes before and after the filler stream, with true xref offsets."""
        text = (
            f"BT /F1 14 Tf 72 720 Td ({_escape(title)}) Tj ET\n"
            f"BT /F1 9 Tf 72 700 Td (oafetch sandbox work {_escape(key)}) Tj ET\n"
        ).encode()
        before: list[bytes] = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
        head = bytearray(_HEAD)
        offsets: list[int] = []
        for number, obj in enumerate(before, start=1):
            offsets.append(len(head))
            head += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
        offsets.append(len(head))
        head += b"6 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n" % filler_len
        tail = bytearray(b"\nendstream\nendobj\n")
        offsets.append(len(head) + filler_len + len(tail))
        info = f"<< /Title ({_escape(title)}) /Producer (oafetch sandbox) >>"
        tail += f"7 0 obj\n{info}\nendobj\n".encode()
        xref_at = len(head) + filler_len + len(tail)
        tail += b"xref\n0 8\n0000000000 65535 f \n"
        for at in offsets:
            tail += b"%010d 00000 n \n" % at
        tail += b"trailer\n<< /Size 8 /Root 1 0 R /Info 7 0 R >>\n"
        tail += b"startxref\n%d\n%%%%EOF\n" % xref_at
        return bytes(head), bytes(tail)

    def oversized_chunks(
        self, size: int, key: str, offset: int = 0, chunk: int = 256 * 1024
    ) -> Iterator[bytes]:
        """Stream a PDF-looking file of exactly `size` bytes (>= 1000) in pieces of `chunk`.

        The first line names `key`, so two works' large files differ; the filler is the pool,
        read from `offset` and wrapping round.
        """
        tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
        marker = f"% oafetch sandbox work {_escape(key)}\n".encode()
        filler = size
        for _ in range(3):  # the /Length digits move the head's length; settle
            head = _HEAD + marker + b"1 0 obj\n<< /Length %d >>\nstream\n" % filler
            filler = max(0, size - len(head) - len(tail))
        yield head
        view = memoryview(self._pool)
        at, left = offset % len(view), filler
        while left > 0:
            step = min(chunk, left, len(view) - at)
            yield bytes(view[at : at + step])
            at, left = (at + step) % len(view), left - step
        yield tail
