"""The one token vocabulary: outcomes, attempt statuses, reasons, fallback outcomes, roles.

These strings are a public contract: they appear in ``manifest.jsonl``, ``attempts.csv``, the
telemetry tables, span attributes and metric labels. Tokens are added, never renamed; a test
pins the whole vocabulary (``tests/test_tokens.py``) and docs/TELEMETRY.md lists it.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class Outcome(StrEnum):
    """How one work ended."""

    SUCCESS = "success"
    SKIP = "skip"
    ERROR = "error"


@unique
class Status(StrEnum):
    """The verb or phase of one attempt row in ``attempts.csv``."""

    HTTP_HEAD = "http-head"
    HTTP_GET = "http-get"
    HTTP_200 = "http-200"
    HTTP_304 = "http-304"
    ROBOTS_FETCH = "robots-fetch"
    ROBOTS_DISALLOWED = "robots-disallowed"
    RETRY = "retry"
    SIZE_MISMATCH = "size-mismatch"
    DOWNLOAD_ERROR = "download-error"


@unique
class Reason(StrEnum):
    """Why an attempt or a work ended the way it did (low-cardinality, stable)."""

    OK = "ok"
    NOT_MODIFIED = "not-modified"
    ROBOTS = "robots"
    RETRY_AFTER = "retry-after"
    BACKOFF = "backoff"
    CONN_ERROR = "conn-error"
    POLICY_TYPE = "policy-type"
    POLICY_SIZE = "policy-size"
    SIZE_MISMATCH = "size-mismatch"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls-error"
    DOWNLOAD_ERROR = "download-error"
    NOT_FOUND = "not-found"
    NO_CANDIDATE = "no-candidate"
    NOT_PDF = "not-pdf"
    BOT_CHALLENGE = "bot-challenge"
    BREAKER_OPEN = "breaker-open"
    RATE_BUDGET = "rate-budget"
    DUPLICATE = "duplicate"
    RESUMED = "resumed"
    # Added beyond the seed vocabulary; each names a case users must tell apart.
    HTTP_ERROR = "http-error"  # a 4xx/5xx that is none of the above (401, 403, 410, 500 …)
    THROTTLED = "throttled"  # 429/503 (or OpenAlex 403) still failing after the retry budget
    BAD_RESPONSE = "bad-response"  # invalid JSON/XML, wrong shape, an API error body
    BAD_REQUEST = "bad-request"  # the API refused the question (e.g. Unpaywall 422 email)
    NO_CREDENTIAL = "no-credential"  # the source needs a key that is not configured
    BUDGET = "budget"  # the work's total time or attempt budget ran out
    REDIRECT = "redirect"  # redirect loop, too many redirects, or a refused redirect target
    DISK_ERROR = "disk-error"  # the file could not be written (ENOSPC, EACCES …)
    CANCELLED = "cancelled"  # the run was interrupted before this work finished
    BAD_INPUT = "bad-input"  # the identifier could not be understood
    TRUNCATED = "truncated"  # a PDF that starts right but has no %%EOF (cut short)
    CHECKSUM_MISMATCH = "checksum-mismatch"  # the bytes differ from the checksum the source lists
    SPEND_CAP = "spend-cap"  # a billed source's spending cap for the run is used up
    # The stored PDF's first pages name another work (a wrong link, a supplement, a notice):
    # quarantined, not stored as the work.
    IDENTITY_MISMATCH = "identity-mismatch"
    # ``identity = "require"``: the PDF could not be shown to be the work (no text layer, no
    # title or DOI to compare with, an uncertain title): quarantined, not stored as the work.
    IDENTITY_UNKNOWN = "identity-unknown"
    # ``skip_retracted = true``: a source marks the work retracted (OpenAlex ``is_retracted``,
    # PMC's ``retracted="yes"``, a Crossref ``updated-by`` retraction): refused, nothing stored.
    RETRACTED = "retracted"
    # ``licenses = [...]``: the candidate's licence (or its lack of one) is not on the list:
    # not fetched.
    LICENSE = "license"
    # ``tdm = true``: the rightsholder reserves text-and-data-mining rights on the file or its
    # landing page (TDMRep: ``tdm-reservation: 1`` header, ``/.well-known/tdmrep.json``, meta).
    TDM_RESERVED = "tdm-reserved"


@unique
class Identity(StrEnum):
    """Whether a stored PDF's first pages name the requested work (``manifest.jsonl``
    ``identity``, ``downloads.identity``)."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"
    OFF = "off"  # not checked: ``identity = "off"``, or a stored file that is not a PDF


@unique
class FallbackOutcome(StrEnum):
    """The outcome of one source tried by the fallback orchestrator."""

    SUCCESS = "success"
    NO_PDF = "no_pdf"
    RETRYABLE = "retryable"
    NONRETRYABLE = "nonretryable"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    ERROR = "error"


@unique
class Role(StrEnum):
    """What an HTTP request is for; decides robots, caching and rate-policy defaults."""

    METADATA = "metadata"
    LANDING = "landing"
    ARTIFACT = "artifact"


@unique
class Kind(StrEnum):
    """What a body turned out to be, by its bytes."""

    PDF = "pdf"
    HTML = "html"
    XML = "xml"
    OTHER = "other"


@unique
class DedupeAction(StrEnum):
    """What storage did with a verified body."""

    STORED = "stored"  # a new file
    LINKED = "linked"  # identical bytes already stored: hard link
    REFERENCED = "referenced"  # identical bytes already stored: manifest points at that file
    KEPT = "kept"  # the same work's verified file was already in place (resume)
    RECOVERED = "recovered"  # row restored from the manifest after a killed run
