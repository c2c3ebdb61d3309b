"""Every span name, attribute key, event name and metric name oafetch emits.

One module, so that names cannot drift; docs/TELEMETRY.md lists each constant and a test checks
that it does. Keys extend the OpenTelemetry semantic conventions (``error.type``,
``http.request.resend_count``, ``url.full`` …), which are re-exported here where oafetch sets them.
"""

from __future__ import annotations

from typing import Final

INSTRUMENTATION_SCOPE: Final = "oafetch"
#: The semantic-conventions schema oafetch's spans and metrics follow (stable HTTP names).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.21.0"

# -- spans ---------------------------------------------------------------------------------
SPAN_RUN: Final = "oafetch.run"
SPAN_WORK: Final = "oafetch.work"
SPAN_ATTEMPT: Final = "oafetch.attempt"
SPAN_BODY: Final = "oafetch.body"
SPAN_EVENTS: Final = "oafetch.events"  # carries events when the current span is full or absent

# -- semantic-convention keys oafetch sets or reads ---------------------------------------------
ERROR_TYPE: Final = "error.type"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_RESEND_COUNT: Final = "http.request.resend_count"
SERVER_ADDRESS: Final = "server.address"
URL_FULL: Final = "url.full"

# -- context stamped on every span ---------------------------------------------------------------
RUN_ID: Final = "oafetch.run_id"
WORK_ID: Final = "oafetch.work_id"
ARTIFACT_ID: Final = "oafetch.artifact_id"
ROLE: Final = "oafetch.role"

# -- request attributes (CLIENT spans and oafetch.http) -----------------------------------------
HOST: Final = "oafetch.host"
URL_HASH: Final = "oafetch.url_hash"
RATE_DELAY_MS: Final = "oafetch.rate.delay_ms"
BREAKER_STATE: Final = "oafetch.breaker.state"
BREAKER_RECORDED: Final = "oafetch.breaker.recorded"
RETRY_COUNT: Final = "oafetch.retry.count"
RETRY_AFTER_S: Final = "oafetch.retry.after_s"
FROM_CACHE: Final = "oafetch.cache.from_cache"
REVALIDATED: Final = "oafetch.cache.revalidated"
STALE: Final = "oafetch.cache.stale"
ELAPSED_MS: Final = "oafetch.elapsed_ms"

# -- oafetch.body --------------------------------------------------------------------------------
BODY_BYTES: Final = "oafetch.body.bytes"
# span_id (hex) of the CLIENT span the body follows
BODY_HTTP_SPAN_ID: Final = "oafetch.body.http_span_id"

# -- oafetch.attempt -----------------------------------------------------------------------------
TIER: Final = "oafetch.tier"
SOURCE: Final = "oafetch.source"
OUTCOME: Final = "oafetch.outcome"
REASON: Final = "oafetch.reason"
STATUS: Final = "oafetch.status"
# the policy that ordered the work's sources (configured | prior | explore | learned) and the
# source's 1-based position in that order; requests ≈ the API call + the files it claimed
POLICY: Final = "oafetch.policy"
RANK: Final = "oafetch.rank"
REQUESTS: Final = "oafetch.requests"
# the work's OA status as a source reported it (gold | green | hybrid | bronze | closed | diamond)
OA_STATUS: Final = "oafetch.oa_status"

# -- oafetch.work ----------------------------------------------------------------------------------
RESOLVER: Final = "oafetch.resolver"
CONTENT_TYPE: Final = "oafetch.content_type"
BYTES: Final = "oafetch.bytes"
SHA256: Final = "oafetch.sha256"
FINAL_PATH: Final = "oafetch.final_path"
DEDUPE_ACTION: Final = "oafetch.dedupe_action"
TTFP_MS: Final = "oafetch.ttfp_ms"
IDENTITY: Final = "oafetch.identity"
IDENTITY_SCORE: Final = "oafetch.identity.score"
IDENTITY_EVIDENCE: Final = "oafetch.identity.evidence"
QUARANTINED: Final = "oafetch.quarantined"
# the order decision (also POLICY): the learning key, why, and the sources in order
POLICY_KEY: Final = "oafetch.policy.key"
POLICY_REASON: Final = "oafetch.policy.reason"
POLICY_ORDER: Final = "oafetch.policy.order"
FILE_VERSION: Final = "oafetch.file.version"  # the stored file's version, as its source said
FILE_LICENSE: Final = "oafetch.file.license"  # … its licence
FILE_HOST_TYPE: Final = "oafetch.file.host_type"  # … publisher | repository | archive
RETRACTED: Final = "oafetch.retracted"  # a source marks the work retracted

# -- oafetch.run -----------------------------------------------------------------------------------
CONFIG_HASH: Final = "oafetch.config_hash"
VERSION: Final = "oafetch.version"
SPEND_CALLS: Final = "oafetch.spend.calls"  # set when the run ends: billed calls charged
SPEND_USD: Final = "oafetch.spend.usd"  # … and their price in dollars

# -- events ----------------------------------------------------------------------------------------
EVENT_RATE_LIMIT: Final = "oafetch.rate_limit"
EVENT_RETRY: Final = "oafetch.retry"
EVENT_BREAKER_TRANSITION: Final = "oafetch.breaker.transition"
EVENT_HTTP: Final = "oafetch.http"
EVENT_FALLBACK_ATTEMPT: Final = "oafetch.fallback_attempt"

RATE_ACTION: Final = "oafetch.rate.action"  # acquire | block | head_skip
RATE_MAX_DELAY_MS: Final = "oafetch.rate.max_delay_ms"
RETRY_ATTEMPT: Final = "oafetch.retry.attempt"
RETRY_SLEEP_S: Final = "oafetch.retry.sleep_s"
BREAKER_SCOPE: Final = "oafetch.breaker.scope"  # host | resolver
BREAKER_OLD: Final = "oafetch.breaker.old_state"
BREAKER_NEW: Final = "oafetch.breaker.new_state"
BREAKER_RESET_TIMEOUT_S: Final = "oafetch.breaker.reset_timeout_s"

# Events one span may carry before further ones go to a fresh oafetch.events child span
# (the SDK silently drops events beyond its limit of 128).
MAX_EVENTS_PER_SPAN: Final = 100

# -- metrics ---------------------------------------------------------------------------------------
METRIC_HTTP_DURATION: Final = "http.client.request.duration"  # from the httpx instrumentation
METRIC_DOWNLOADS: Final = "oafetch.downloads"
METRIC_DOWNLOAD_SIZE: Final = "oafetch.download.size"
METRIC_RATE_DELAY: Final = "oafetch.rate_limit.delay"
METRIC_BREAKER_TRANSITIONS: Final = "oafetch.breaker.transitions"
METRIC_FALLBACK_ATTEMPTS: Final = "oafetch.fallback.attempts"
METRIC_IDENTITY_CHECKS: Final = "oafetch.identity.checks"
METRIC_RETRIES: Final = "oafetch.retries"
METRIC_TRANSPORT_FAILURE_DURATION: Final = "oafetch.http.failure.duration"
