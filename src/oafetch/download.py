"""A verified download of one candidate URL: stream → hash → classify → atomic publish.

The body streams into a temp file beside its target while sha256 is computed and the first and
last bytes are kept for :func:`~oafetch.classify.classify`; an HTML page is then judged whole, and
a PDF whose padding hides its end is read further back from the temp file (bounded).
``Content-Length`` over the size policy is refused before reading; a body that grows past it is
aborted mid-stream, and a compressed body is decoded at most ``chunk_bytes`` at a time, so a gzip
bomb is stopped before it fills memory. A body must arrive within ``max_body_s`` (and the work's
total budget): a slow drip that never trips the read timeout ends as ``timeout``. A short body is
a ``size-mismatch`` (retried when the connection broke). Only a body whose bytes pass the verdict
is published; everything else is deleted and reported with its reason. Body time and bytes are
measured in an ``oafetch.body`` span (the CLIENT span ends when the headers arrive).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from oafetch.classify import HEAD_BYTES, TAIL_BYTES, Classification, Verdict, classify, verdict
from oafetch.config import DownloadConfig
from oafetch.errors import FetchError
from oafetch.http.client import HttpClient
from oafetch.http.decoding import decoded_chunks
from oafetch.http.errors import check_status, is_challenge, translate
from oafetch.http.transports import META
from oafetch.identity import IdentityVerdict
from oafetch.manifest import AttemptRow
from oafetch.storage import Storage, Stored, disk_error, md5_hex
from oafetch.telemetry import names
from oafetch.tokens import Kind, Reason, Role, Status
from oafetch.urls import redact_url

MAX_HTML_KEEP = 2 * 1024 * 1024  # landing pages larger than this are not parsed for links

RecordAttempt = Callable[[AttemptRow], None]


@dataclass(frozen=True)
class BodyOutcome:
    """What one successful HTTP exchange delivered, and whether it was stored."""

    url: str  # final URL after redirects
    http_status: int
    content_type: str
    verdict: Verdict
    size: int
    sha256: str
    stored: Stored | None
    html: str | None = None  # kept for landing-page parsing when the body is HTML
    elapsed_ms: float = 0.0
    identity: IdentityVerdict | None = None  # set by the fallback's identity check of a stored PDF


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    if value is None or "content-encoding" in response.headers:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class _Body:
    """Streams a response into a temp file, keeping hash, size, head and tail."""

    def __init__(self, fh: BinaryIO, max_bytes: int, md5: bool = False) -> None:
        self.fh = fh
        self.max_bytes = max_bytes
        self.sha = hashlib.sha256()
        # md5 only when the source lists one to check against (Zenodo): never a content id
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        self.size = 0
        self.head = bytearray()
        self.tail = b""

    def feed(self, chunk: bytes, url: str) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise FetchError(
                Reason.POLICY_SIZE,
                f"body of {redact_url(url)} exceeds max_bytes={self.max_bytes}; aborted",
                status=Status.DOWNLOAD_ERROR,
            )
        self.sha.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.tail = (
            (self.tail + chunk)[-TAIL_BYTES:] if len(chunk) < TAIL_BYTES else chunk[-TAIL_BYTES:]
        )
        self.fh.write(chunk)


def download(
    http: HttpClient,
    url: str,
    *,
    work_id: str,
    storage: Storage,
    policy: DownloadConfig,
    source: str,
    role: Role = Role.ARTIFACT,
    record: RecordAttempt | None = None,
    max_rate_wait_s: float | None = None,
    keep_slot: bool = False,
    reservation: tuple[str, float] | None = None,
    origin_host: str | None = None,
    expected_md5: str | None = None,
) -> BodyOutcome:
    """Fetch ``url`` with retries and store its body if it is what the policy accepts.

    ``origin_host`` names the host the URL came from (an API, a landing page), so the network
    guard refuses a public source pointing into private address space (see ``HttpClient.send``).
    ``expected_md5`` is the checksum the source lists for the file (hex, or ``md5:hex``): bytes
    that do not match it fail as ``checksum-mismatch`` and are never stored.

    Returns:
        A :class:`BodyOutcome`; ``stored`` is ``None`` when the verdict refused the body
        (HTML served as PDF, a challenge page, a truncated PDF …).

    Raises:
        FetchError: the request or the transfer failed (after retries where retryable).
    """
    tracer = http.telemetry.tracer
    body_limit = min(policy.max_body_s, http.config.fallback.total_budget_s)

    def attempt(retry_count: int) -> BodyOutcome:
        started = time.perf_counter()
        try:
            response = http.send(
                "GET",
                url,
                role=role,
                stream=True,
                retry_count=retry_count,
                max_rate_wait_s=max_rate_wait_s,
                keep_slot=keep_slot,
                reservation=reservation if retry_count == 0 else None,
                origin_host=origin_host,
            )
        except FetchError as exc:
            if record:
                record(
                    AttemptRow(
                        source,
                        url,
                        "GET",
                        exc.status,
                        exc.reason,
                        http_status=exc.http_status,
                        elapsed_ms=(time.perf_counter() - started) * 1000,
                    )
                )
            raise
        meta = response.request.extensions.get(META, {})
        try:
            ctype = response.headers.get("content-type", "")
            declared = _content_length(response)
            try:
                check_status(response)
            except FetchError as exc:
                _record(record, source, url, exc.status, exc.reason, response, started)
                raise
            if declared is not None and declared > policy.max_bytes:
                _record(
                    record,
                    source,
                    url,
                    Status.DOWNLOAD_ERROR,
                    Reason.POLICY_SIZE,
                    response,
                    started,
                )
                raise FetchError(
                    Reason.POLICY_SIZE,
                    f"{redact_url(url)} declares {declared} bytes > max_bytes={policy.max_bytes}",
                    http_status=response.status_code,
                )
            temp, fh = storage.open_temp(work_id)
            body = _Body(fh, policy.max_bytes, md5=expected_md5 is not None)
            published = False
            try:
                with tracer.start_as_current_span(names.SPAN_BODY) as span:
                    if meta.get("client_span_id"):
                        span.set_attribute(names.BODY_HTTP_SPAN_ID, meta["client_span_id"])
                    try:
                        deadline = time.monotonic() + body_limit
                        for chunk in decoded_chunks(response, policy.chunk_bytes):
                            if http.cancel.is_set():
                                raise FetchError(Reason.CANCELLED, "run interrupted mid-download")
                            body.feed(chunk, url)
                            if time.monotonic() > deadline:
                                raise FetchError(
                                    Reason.TIMEOUT,
                                    f"{redact_url(url)}: body still arriving after the "
                                    f"{body_limit:g}s deadline ({body.size} bytes so far)",
                                    http_status=response.status_code,
                                )
                    except httpx.HTTPError as exc:
                        if isinstance(exc, httpx.TimeoutException):
                            raise translate(exc, url) from None
                        if declared is not None and body.size < declared:
                            raise FetchError(
                                Reason.SIZE_MISMATCH,
                                f"{redact_url(url)}: got {body.size} of {declared} bytes",
                                status=Status.SIZE_MISMATCH,
                                http_status=response.status_code,
                                # the connection broke (reset, closed early): worth another try
                                retryable=isinstance(exc, httpx.TransportError),
                            ) from None
                        raise translate(exc, url) from None
                    except OSError as exc:
                        raise disk_error(exc, temp) from exc
                    finally:
                        span.set_attribute(names.BODY_BYTES, body.size)
                if declared is not None and body.size != declared:
                    raise FetchError(
                        Reason.SIZE_MISMATCH,
                        f"{redact_url(url)}: got {body.size} bytes, Content-Length says {declared}",
                        status=Status.SIZE_MISMATCH,
                        http_status=response.status_code,
                    )
                _check_md5(body, expected_md5, url, response.status_code)
                try:
                    try:
                        fh.flush()
                        if policy.fsync:
                            os.fsync(fh.fileno())
                    finally:
                        fh.close()
                except OSError as exc:  # buffered bytes meet a full disk here, not in write()
                    raise disk_error(exc, temp) from exc
                try:
                    found, page = _classify(temp, body)
                except OSError as exc:
                    raise disk_error(exc, temp) from exc
                decision = verdict(
                    found,
                    size=body.size,
                    accept=policy.accept,
                    min_pdf_bytes=policy.min_pdf_bytes,
                    challenge_header=is_challenge(response),
                )
                html = None
                if page is not None and not decision.ok:
                    html = page.decode(response.encoding or "utf-8", errors="replace")
                sha = body.sha.hexdigest()
                stored = None
                if decision.ok:
                    stored = storage.publish(temp, work_id=work_id, kind=found.kind, sha256=sha)
                    published = True
                elapsed = (time.perf_counter() - started) * 1000
                _record(
                    record,
                    source,
                    url,
                    Status.HTTP_200 if decision.ok else Status.DOWNLOAD_ERROR,
                    decision.reason,
                    response,
                    started,
                    size=body.size,
                )
                return BodyOutcome(
                    url=str(response.url),
                    http_status=response.status_code,
                    content_type=ctype,
                    verdict=decision,
                    size=body.size,
                    sha256=sha,
                    stored=stored,
                    html=html,
                    elapsed_ms=elapsed,
                )
            except FetchError as exc:
                _record(
                    record, source, url, exc.status, exc.reason, response, started, size=body.size
                )
                raise
            finally:
                if not fh.closed:
                    with contextlib.suppress(OSError):  # never mask the error being raised
                        fh.close()
                if not published:
                    storage.discard(temp)
        finally:
            response.close()

    def on_retry(number: int, sleep_s: float, reason: Reason, error: FetchError) -> None:
        if record:
            record(
                AttemptRow(source, url, "GET", Status.RETRY, reason, http_status=error.http_status)
            )

    return http.retrying(attempt, on_retry=on_retry)


def _classify(temp: Path, body: _Body) -> tuple[Classification, bytes | None]:
    """Classify a streamed body; return it with the page's bytes when it is an HTML page.

    A page (up to ``MAX_HTML_KEEP``) is judged whole, wherever a wall's markers sit in it. A PDF
    whose kept tail shows no end is looked at further back, as far as ``classify`` asks.
    """
    head = bytes(body.head)
    tail = body.tail
    found = classify(head, tail, whole=body.size <= len(tail))
    while found.needs_tail:
        with temp.open("rb") as fh:
            fh.seek(max(0, body.size - found.needs_tail))
            tail = fh.read(found.needs_tail)
        found = classify(head, tail, whole=len(tail) >= body.size)
    if found.kind is not Kind.HTML or body.size > MAX_HTML_KEEP:
        return found, None
    page = temp.read_bytes()
    return classify(head, tail, page=page), page


def _record(
    record: RecordAttempt | None,
    source: str,
    url: str,
    status: Status,
    reason: Reason,
    response: httpx.Response,
    started: float,
    *,
    size: int | None = None,
) -> None:
    if record is None:
        return
    record(
        AttemptRow(
            resolver=source,
            url=url,
            verb="GET",
            status=status,
            reason=reason,
            http_status=response.status_code,
            content_type=response.headers.get("content-type"),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            bytes_written=size,
            content_length_hdr=_content_length(response),
        )
    )


def _check_md5(body: _Body, expected: str | None, url: str, http_status: int) -> None:
    """Raise ``checksum-mismatch`` when the bytes differ from the source's md5."""
    if body.md5 is None or expected is None:
        return
    got = body.md5.hexdigest()
    want = md5_hex(expected) or expected.lower()
    if got != want:
        raise FetchError(
            Reason.CHECKSUM_MISMATCH,
            f"{redact_url(url)}: md5 of the {body.size} bytes received is {got}, "
            f"the source lists {want}",
            http_status=http_status,
        )
