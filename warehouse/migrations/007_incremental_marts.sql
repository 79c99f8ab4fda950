-- Incremental marts: what each binarize built, so the next one rebuilds only the
-- prompts that staging rows loaded since then touch (docs/contract.md, Binarization,
-- "Incremental builds"). Both tables are written in binarize's one transaction.

-- One row per binarize. The next build is incremental only if it would run the
-- same options over the same SQL; otherwise it rebuilds in full and says why.
CREATE TABLE IF NOT EXISTS binarize_builds (
    build_id      VARCHAR PRIMARY KEY,
    built_at      TIMESTAMP NOT NULL,
    mode          VARCHAR NOT NULL,   -- full | incremental
    reason        VARCHAR NOT NULL,   -- why that mode
    options       JSON NOT NULL,      -- the BinarizeConfig the models read
    models_sha256 VARCHAR NOT NULL,   -- of the SQL the build ran (models, macros, binarize statements)
    new_batches   BIGINT NOT NULL,    -- ingest batches first built by this build
    rebuilt_keys  BIGINT              -- (source, prompt) keys an incremental build rebuilt; NULL when full
);

-- The watermark: every ingest batch whose staging rows the marts include. Batch ids
-- are run UUIDs, not ordered, so the watermark is the set rather than a maximum.
CREATE TABLE IF NOT EXISTS binarize_batches (
    batch_id VARCHAR PRIMARY KEY,
    build_id VARCHAR NOT NULL
);

-- Completions whose up and down votes cancel out: left out of feedback, kept here
-- so that an incremental build can count them without recounting every vote.
-- Rebuilt by binarize (warehouse/models/marts/feedback_ties.sql); empty until then.
CREATE TABLE IF NOT EXISTS feedback_ties (
    source     VARCHAR,
    prompt     STRUCT(role VARCHAR, content VARCHAR)[],
    completion VARCHAR,
    up_pair    VARCHAR,
    down_pair  VARCHAR,
    batch_id   VARCHAR
);
