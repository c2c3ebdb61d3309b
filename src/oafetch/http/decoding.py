"""Bounded decoding of compressed bodies: a compression bomb stays small, whatever its chain.

httpx decodes each network read in one go, so 64 KiB of a gzip bomb become 64 MiB in memory
before any size check sees a byte, and a stacked ``Content-Encoding: gzip, gzip`` multiplies
that again. :func:`decoded_chunks` never hands a body to httpx's decoders: it reads the raw
bytes and undoes every coding of the chain itself, each stage producing at most ``step`` bytes
per call, so the caller's size policy stops a bomb after at most one step per stage.

oafetch asks only for the codings it can bound (:data:`ACCEPT_ENCODING`); a coding a server
sends unasked (``br``, ``zstd``, ``compress``, anything unknown) is refused with a clear reason
rather than passed to a decoder without a bound. Works on any ``httpx.Response`` whose stream
was not read yet, including the ones the HTTP cache builds from stored bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import httpx

from oafetch.errors import FetchError
from oafetch.tokens import Reason
from oafetch.urls import redact_url

ACCEPT_ENCODING = "gzip, deflate"
"""What oafetch asks servers for: only codings decoded here with a bound."""

# At most this many codings in one chain: real servers send one; more is an attack.
MAX_CHAIN = 4

# zlib window bits per coding (gzip header / zlib header; raw deflate is tried on failure).
_ZLIB_CODINGS = {
    "gzip": zlib.MAX_WBITS | 16,
    "x-gzip": zlib.MAX_WBITS | 16,
    "deflate": zlib.MAX_WBITS,
}


def coding_chain(header: str) -> list[str]:
    """The codings of a ``Content-Encoding`` value in the order they were applied.

    ``identity`` entries and empty items are dropped; names are lower-cased.
    """
    return [c for c in (p.strip().lower() for p in header.split(",")) if c and c != "identity"]


def _check_chain(chain: list[str], url: str) -> None:
    unknown = [c for c in chain if c not in _ZLIB_CODINGS]
    if unknown:
        raise FetchError(
            Reason.DOWNLOAD_ERROR,
            f"{redact_url(url)} is sent with Content-Encoding {', '.join(chain)}: "
            f"{', '.join(unknown)} was not asked for and cannot be decoded with a size bound",
        )
    if len(chain) > MAX_CHAIN:
        raise FetchError(
            Reason.DOWNLOAD_ERROR,
            f"{redact_url(url)} is sent with {len(chain)} stacked content codings "
            f"(at most {MAX_CHAIN} are decoded)",
        )


def _inflate(chunks: Iterable[bytes], coding: str, step: int, url: str) -> Iterator[bytes]:
    """Undo one zlib-family coding, never producing more than ``step`` bytes per chunk."""
    decoder = zlib.decompressobj(_ZLIB_CODINGS[coding])
    started = False
    for raw in chunks:
        data = raw
        while data and not decoder.eof:
            try:
                out = decoder.decompress(data, step)
            except zlib.error as exc:
                if coding == "deflate" and not started:  # raw deflate, without a zlib header
                    decoder, started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise FetchError(
                    Reason.DOWNLOAD_ERROR, f"corrupt {coding} body from {redact_url(url)}: {exc}"
                ) from None
            started = True
            data = decoder.unconsumed_tail
            if out:
                yield out
    while not decoder.eof and (out := decoder.decompress(b"", step)):
        yield out


def decode_stream(chunks: Iterable[bytes], header: str, step: int, url: str) -> Iterator[bytes]:
    """``chunks`` (raw bytes) with every coding of ``header`` undone, ``step`` bytes at a time.

    Each stage is a generator pulling from the one below, so at any moment at most one
    bounded piece per stage is in memory.

    Raises:
        FetchError: a coding oafetch did not ask for, too long a chain, or a corrupt stream
            (``download-error``).
    """
    chain = coding_chain(header)
    _check_chain(chain, url)
    stream: Iterable[bytes] = chunks
    for coding in reversed(chain):  # the last applied is the first undone
        stream = _inflate(stream, coding, step, url)
    yield from stream


def decoded_chunks(response: httpx.Response, step: int) -> Iterator[bytes]:
    """The body of ``response``, decoded, never more than ``step`` bytes per chunk per stage.

    Raises:
        FetchError: see :func:`decode_stream`.
        httpx.HTTPError: the transfer failed (the caller translates it).
    """
    header = response.headers.get("content-encoding", "")
    try:
        url = str(response.url)
    except RuntimeError:  # a response built without a request
        url = ""
    if response.is_stream_consumed:
        # Read into memory already (httpx decoded it then): nothing left to bound.
        content = response.content
        for start in range(0, len(content), step):
            yield content[start : start + step]
        return
    yield from decode_stream(response.iter_raw(), header, step, url)
