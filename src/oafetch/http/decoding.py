"""Bounded decoding of compressed bodies (gzip, deflate): a compression bomb stays small.

httpx decodes each network read in one go, so 64 KiB of a gzip bomb become 64 MiB in memory
before any size check sees a byte. :func:`decoded_chunks` decodes gzip and deflate itself with
a bounded output per step, so the caller's size policy stops a bomb after at most one step.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

from oafetch.errors import FetchError
from oafetch.tokens import Reason
from oafetch.urls import redact_url

# zlib window bits per Content-Encoding decoded here (gzip header / zlib header).
_ZLIB_CODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16,
                 "deflate": zlib.MAX_WBITS}


def decoded_chunks(response: httpx.Response, step: int) -> Iterator[bytes]:
    """The body of ``response``, decoded, never more than ``step`` bytes per chunk for gzip/deflate.

    gzip and deflate (what httpx asks for) are decoded here with a bounded output per step;
    identity, any other coding a server sends unasked, and a body already read into memory
    are left to httpx.

    Raises:
        FetchError: the compressed stream is corrupt (``download-error``).
        httpx.HTTPError: the transfer failed (the caller translates it).
    """
    coding = response.headers.get("content-encoding", "").strip().lower()
    wbits = _ZLIB_CODINGS.get(coding)
    if wbits is None or response.is_stream_consumed:
        # identity, a coding nobody asked for, or a body already in memory (a cache hit, a
        # mock): nothing left to bound, httpx decodes it
        yield from response.iter_bytes()
        return
    decoder = zlib.decompressobj(wbits)
    started = False
    for raw in response.iter_raw():
        data = raw
        while data:
            try:
                out = decoder.decompress(data, step)
            except zlib.error as exc:
                if coding == "deflate" and not started:  # raw deflate, without zlib header
                    decoder, started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise FetchError(
                    Reason.DOWNLOAD_ERROR,
                    f"corrupt {coding} body from {redact_url(str(response.url))}: {exc}",
                ) from None
            started = True
            data = decoder.unconsumed_tail
            if out:
                yield out
    while not decoder.eof and (out := decoder.decompress(b"", step)):
        yield out
