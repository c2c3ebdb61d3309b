"""The token vocabulary is a public contract: pinned here, added to, never renamed."""

from oafetch.tokens import (
    DedupeAction,
    FallbackOutcome,
    Identity,
    Kind,
    Outcome,
    Reason,
    Role,
    Status,
)


def test_identity_verdicts_are_pinned() -> None:
    assert [i.value for i in Identity] == ["match", "mismatch", "unknown", "off"]


def test_outcomes_are_pinned() -> None:
    assert [o.value for o in Outcome] == ["success", "skip", "error"]


def test_statuses_are_pinned() -> None:
    assert [s.value for s in Status] == [
        "http-head",
        "http-get",
        "http-200",
        "http-304",
        "robots-fetch",
        "robots-disallowed",
        "retry",
        "size-mismatch",
        "download-error",
    ]


def test_reasons_are_pinned() -> None:
    assert [r.value for r in Reason] == [
        "ok",
        "not-modified",
        "robots",
        "retry-after",
        "backoff",
        "conn-error",
        "policy-type",
        "policy-size",
        "size-mismatch",
        "timeout",
        "tls-error",
        "download-error",
        "not-found",
        "no-candidate",
        "not-pdf",
        "bot-challenge",
        "breaker-open",
        "rate-budget",
        "duplicate",
        "resumed",
        "http-error",
        "throttled",
        "bad-response",
        "bad-request",
        "no-credential",
        "budget",
        "redirect",
        "disk-error",
        "cancelled",
        "bad-input",
        "truncated",
        "checksum-mismatch",
        "spend-cap",
        "identity-mismatch",
        "identity-unknown",
        "retracted",
        "license",
        "tdm-reserved",
    ]


def test_fallback_outcomes_roles_kinds_and_dedupe_are_pinned() -> None:
    assert [f.value for f in FallbackOutcome] == [
        "success",
        "no_pdf",
        "retryable",
        "nonretryable",
        "timeout",
        "skipped",
        "error",
    ]
    assert [r.value for r in Role] == ["metadata", "landing", "artifact"]
    assert [k.value for k in Kind] == ["pdf", "html", "xml", "other"]
    assert [d.value for d in DedupeAction] == [
        "stored",
        "linked",
        "referenced",
        "kept",
        "recovered",
    ]
