-- Core schema: raw rows as read, per-source staging, bookkeeping and lineage.
-- Marts (feedback, preference_pairs) are rebuilt by `thumbs binarize` from
-- warehouse/marts/*.sql; they are created empty here so analysts' queries and
-- views work on a fresh warehouse.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;

-- One row per file an ingest run looked at. A file is identified by the sha256
-- of its bytes, so the same content under another name is recognised.
CREATE TABLE IF NOT EXISTS ingest_runs (
    batch_id          VARCHAR NOT NULL,
    source            VARCHAR NOT NULL,
    file              VARCHAR NOT NULL,
    file_sha256       VARCHAR NOT NULL,
    started_at        TIMESTAMP NOT NULL,
    finished_at       TIMESTAMP,
    rows_read         BIGINT NOT NULL DEFAULT 0,
    rows_loaded       BIGINT NOT NULL DEFAULT 0,
    rows_duplicate    BIGINT NOT NULL DEFAULT 0,
    rows_quarantined  BIGINT NOT NULL DEFAULT 0,
    status            VARCHAR NOT NULL,   -- loaded | skipped (same sha256 already loaded)
    options           JSON,
    PRIMARY KEY (batch_id, file)
);

-- Every row that was read and not loaded, with the reason.
CREATE TABLE IF NOT EXISTS quarantine (
    batch_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    file        VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    reason      VARCHAR NOT NULL,
    raw         VARCHAR            -- the row as read (truncated to 64 KiB)
);

-- Rows as read: one table per source, the record kept verbatim as JSON text.
CREATE TABLE IF NOT EXISTS raw.records (
    batch_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    record      VARCHAR NOT NULL
);

-- Staging: one table per source entity, parsed to role/content messages.
-- row_key is the source's identity for "the same row": a content hash, or the
-- source's own id where it has one (OASST message_id, a log's event_id).
CREATE TABLE IF NOT EXISTS staging.stg_hh__pairs (
    row_key     VARCHAR PRIMARY KEY,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    prompt      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen      VARCHAR NOT NULL,
    rejected    VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS staging.stg_shp__pairs (
    row_key        VARCHAR PRIMARY KEY,
    batch_id       VARCHAR NOT NULL,
    file_sha256    VARCHAR NOT NULL,
    row_number     BIGINT NOT NULL,
    post_id        VARCHAR NOT NULL,
    prompt         STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen         VARCHAR NOT NULL,
    rejected       VARCHAR NOT NULL,
    chosen_score   BIGINT,
    rejected_score BIGINT,
    score_ratio    DOUBLE
);

CREATE TABLE IF NOT EXISTS staging.stg_oasst__messages (
    row_key         VARCHAR PRIMARY KEY,      -- message_id
    batch_id        VARCHAR NOT NULL,
    file_sha256     VARCHAR NOT NULL,
    row_number      BIGINT NOT NULL,
    message_id      VARCHAR NOT NULL,
    parent_id       VARCHAR,
    message_tree_id VARCHAR,
    role            VARCHAR NOT NULL,         -- user | assistant
    content         VARCHAR NOT NULL,
    rank            INTEGER,                  -- 0 = best among siblings
    deleted         BOOLEAN NOT NULL,
    synthetic       BOOLEAN NOT NULL,
    review_result   BOOLEAN,
    lang            VARCHAR,
    created_at      TIMESTAMP
);

CREATE TABLE IF NOT EXISTS staging.stg_log__ratings (
    row_key         VARCHAR PRIMARY KEY,
    batch_id        VARCHAR NOT NULL,
    file_sha256     VARCHAR NOT NULL,
    row_number      BIGINT NOT NULL,
    log_name        VARCHAR NOT NULL,
    event_id        VARCHAR,
    event_at        TIMESTAMP,
    conversation_id VARCHAR,
    user_pseudonym  VARCHAR,
    model_version   VARCHAR,
    prompt          STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    completion      VARCHAR NOT NULL,
    rating_raw      VARCHAR NOT NULL,
    label           BOOLEAN            -- NULL: neutral (between thresholds), kept and counted, not trained on
);

CREATE TABLE IF NOT EXISTS staging.stg_log__pairs (
    row_key         VARCHAR PRIMARY KEY,
    batch_id        VARCHAR NOT NULL,
    file_sha256     VARCHAR NOT NULL,
    row_number      BIGINT NOT NULL,
    log_name        VARCHAR NOT NULL,
    event_id        VARCHAR,
    event_at        TIMESTAMP,
    conversation_id VARCHAR,
    user_pseudonym  VARCHAR,
    model_version   VARCHAR,
    prompt          STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen          VARCHAR NOT NULL,
    rejected        VARCHAR NOT NULL
);

-- Marts (see warehouse/marts/): created empty, replaced by `thumbs binarize`.
CREATE TABLE IF NOT EXISTS preference_pairs (
    pair_id     VARCHAR,
    source      VARCHAR,
    prompt      STRUCT(role VARCHAR, content VARCHAR)[],
    chosen      VARCHAR,
    rejected    VARCHAR,
    margin      DOUBLE,
    split       VARCHAR,
    ingested_at TIMESTAMP,
    batch_id    VARCHAR
);

CREATE TABLE IF NOT EXISTS feedback (
    feedback_id VARCHAR,
    source      VARCHAR,
    prompt      STRUCT(role VARCHAR, content VARCHAR)[],
    completion  VARCHAR,
    label       BOOLEAN,
    pair_id     VARCHAR,
    split       VARCHAR,
    ingested_at TIMESTAMP,
    batch_id    VARCHAR
);

-- Lineage: one row per flow run, one per checkpoint.
CREATE TABLE IF NOT EXISTS lineage_runs (
    run_id       VARCHAR PRIMARY KEY,
    flow         VARCHAR NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    status       VARCHAR NOT NULL,     -- running | completed | failed
    code_version VARCHAR,
    config       JSON
);

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id  VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,     -- feedback | pairs
    path         VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    run_id       VARCHAR,
    options      JSON,
    row_counts   JSON,                 -- per split, label and source
    files        JSON                  -- file name -> sha256
);

CREATE TABLE IF NOT EXISTS checkpoints (
    checkpoint_id VARCHAR PRIMARY KEY,
    run_id        VARCHAR,
    algo          VARCHAR NOT NULL,
    base_model    VARCHAR NOT NULL,
    snapshot_id   VARCHAR,
    path          VARCHAR NOT NULL,
    metrics       JSON,
    promoted      BOOLEAN NOT NULL DEFAULT false,
    parent_checkpoint VARCHAR,
    created_at    TIMESTAMP
);
