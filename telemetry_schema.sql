-- oafetch telemetry schema: the stable relational contract of the local store.
-- The code loads this file (it is the single source of truth); every statement is idempotent.
-- Times: ts / started_at / finished_at are Unix epoch seconds (REAL). Durations are milliseconds.
-- No table stores a URL: url_hash is the first 16 hex of sha256(canonical URL).
-- trace_id (32 hex) and span_id (16 hex) link every row to its span in spans.jsonl / Jaeger.

PRAGMA journal_mode = WAL;

-- One row per HTTP attempt as it left the cache and the rate limiter (cache hits included,
-- flagged from_cache). bytes/body_ms are filled from the oafetch.body span of the same request.
CREATE TABLE IF NOT EXISTS http_events (
    run_id           TEXT NOT NULL,
    ts               REAL NOT NULL,
    host             TEXT,
    role             TEXT,            -- metadata | landing | artifact
    method           TEXT,
    status           INTEGER,         -- HTTP status; NULL when the transport failed
    url_hash         TEXT,
    from_cache       INTEGER NOT NULL DEFAULT 0,
    revalidated      INTEGER NOT NULL DEFAULT 0,
    stale            INTEGER NOT NULL DEFAULT 0,
    retry_count      INTEGER NOT NULL DEFAULT 0,
    retry_after_s    REAL,
    rate_delay_ms    REAL,
    breaker_state    TEXT,            -- closed | open | half-open
    breaker_recorded TEXT,            -- success | failure | excluded
    elapsed_ms       REAL,
    error            TEXT,            -- low-cardinality error.type
    bytes            INTEGER,
    body_ms          REAL,
    trace_id         TEXT,
    span_id          TEXT
);
CREATE INDEX IF NOT EXISTS http_events_run ON http_events (run_id);

CREATE TABLE IF NOT EXISTS rate_events (
    run_id       TEXT NOT NULL,
    ts           REAL NOT NULL,
    host         TEXT,
    role         TEXT,
    action       TEXT,                -- acquire | block | head_skip
    delay_ms     REAL,
    max_delay_ms REAL,
    trace_id     TEXT,
    span_id      TEXT
);
CREATE INDEX IF NOT EXISTS rate_events_run ON rate_events (run_id);

CREATE TABLE IF NOT EXISTS breaker_transitions (
    run_id          TEXT NOT NULL,
    ts              REAL NOT NULL,
    host            TEXT,
    scope           TEXT,             -- host | resolver
    old_state       TEXT,
    new_state       TEXT,
    reset_timeout_s REAL,
    trace_id        TEXT,
    span_id         TEXT
);
CREATE INDEX IF NOT EXISTS breaker_transitions_run ON breaker_transitions (run_id);

CREATE TABLE IF NOT EXISTS fallback_attempts (
    run_id      TEXT NOT NULL,
    ts          REAL NOT NULL,
    work_id     TEXT,
    artifact_id TEXT,
    tier        TEXT,
    source      TEXT,
    host        TEXT,
    outcome     TEXT,                 -- success | no_pdf | retryable | nonretryable | timeout | skipped | error
    reason      TEXT,
    status      TEXT,
    elapsed_ms  REAL,
    trace_id    TEXT,
    span_id     TEXT,
    -- the order decision: configured | prior | explore | learned, and the source's 1-based
    -- position in the work's order (NULL: not ordered, e.g. a list-only run)
    policy      TEXT NOT NULL DEFAULT 'configured',
    rank        INTEGER,
    requests    INTEGER,              -- the API call + the files the attempt claimed
    oa_status   TEXT                  -- the work's OA status as a source reported it, when known
);
CREATE INDEX IF NOT EXISTS fallback_attempts_run ON fallback_attempts (run_id);

-- One row per work outcome.
CREATE TABLE IF NOT EXISTS downloads (
    run_id        TEXT NOT NULL,
    ts            REAL NOT NULL,
    work_id       TEXT,
    artifact_id   TEXT,
    resolver      TEXT,
    outcome       TEXT,               -- success | skip | error
    reason        TEXT,
    content_type  TEXT,
    bytes         INTEGER,
    sha256        TEXT,
    final_path    TEXT,
    dedupe_action TEXT,
    ttfp_ms       REAL,
    trace_id      TEXT,
    span_id       TEXT,
    identity          TEXT,           -- match | mismatch | unknown | off (NULL: no PDF checked)
    identity_score    REAL,           -- title score 0-100 of the identity check
    identity_evidence TEXT,           -- short account of the identity verdict
    quarantined       INTEGER NOT NULL DEFAULT 0, -- files moved to quarantine/ for this work
    version           TEXT,           -- the stored file's version (publishedVersion …), as said
    license           TEXT,           -- its licence, as its source said
    host_type         TEXT,           -- publisher | repository | archive
    retracted         INTEGER         -- 1: a source marks the work retracted, 0: not; NULL: unsaid
);
CREATE INDEX IF NOT EXISTS downloads_run ON downloads (run_id);

-- One row per run: inserted when the run starts (finished_at NULL while it runs),
-- completed from the tables above when it ends.
CREATE TABLE IF NOT EXISTS run_summary (
    run_id              TEXT PRIMARY KEY,
    started_at          REAL,
    finished_at         REAL,
    artifacts_total     INTEGER,
    artifacts_success   INTEGER,
    yield_pct           REAL,
    ttfp_p50_ms         REAL,
    ttfp_p95_ms         REAL,
    cache_hit_pct       REAL,
    rate_delay_p95_ms   REAL,
    http_429_ratio      REAL,
    breaker_open_events INTEGER,
    dedupe_saved_mb     REAL,
    corruption_count    INTEGER,
    spans_dropped       INTEGER NOT NULL DEFAULT 0,
    config_hash         TEXT,
    oafetch_version     TEXT,
    -- what billed sources (openalex_content) charged this run: calls and dollars
    spend_calls         INTEGER NOT NULL DEFAULT 0,
    spend_usd           REAL NOT NULL DEFAULT 0,
    -- files the identity check quarantined (not the work) per 1,000 works
    identity_mismatch_per_1k REAL
);
