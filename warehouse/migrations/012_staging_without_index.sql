-- Staging tables without the primary-key index on row_key. row_key stays unique: the
-- loader skips a row whose key is present with an anti-join on the narrow row_key
-- column, inside the ingest's one transaction, and only one process writes a
-- warehouse at a time (DuckDB's file lock). The index was the ingest's largest cost
-- that grew with history: a night's 10,000 random keys load much of a 10M-key index
-- from disk (1.6 s cold, against 0.08 s for the anti-join on the same base), and at
-- 1M rows it made staging 29 s against 19 s (benchmarks/RESULTS.md, run 8).
--
-- DuckDB cannot drop a constraint, so each table is rebuilt, its rows in their order.
-- RLCD's table (a later source's, which the loader makes from its declaration in
-- tasks/sources/rlcd.py) is rebuilt too; made empty first where it is missing, so that
-- no statement here needs a condition. A table of a source added outside this project
-- keeps its index: it stays correct, only slower.

CREATE TABLE staging.stg_hh__pairs_unindexed (
    row_key     UHUGEINT NOT NULL,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    prompt      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen      VARCHAR NOT NULL,
    rejected    VARCHAR NOT NULL,
    prompt_key  UHUGEINT
);
INSERT INTO staging.stg_hh__pairs_unindexed BY NAME SELECT * FROM staging.stg_hh__pairs;
DROP TABLE staging.stg_hh__pairs;
ALTER TABLE staging.stg_hh__pairs_unindexed RENAME TO stg_hh__pairs;

CREATE TABLE staging.stg_shp__pairs_unindexed (
    row_key     UHUGEINT NOT NULL,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    post_id        VARCHAR NOT NULL,
    prompt         STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen         VARCHAR NOT NULL,
    rejected       VARCHAR NOT NULL,
    chosen_score   BIGINT,
    rejected_score BIGINT,
    score_ratio    DOUBLE,
    prompt_key     UHUGEINT
);
INSERT INTO staging.stg_shp__pairs_unindexed BY NAME SELECT * FROM staging.stg_shp__pairs;
DROP TABLE staging.stg_shp__pairs;
ALTER TABLE staging.stg_shp__pairs_unindexed RENAME TO stg_shp__pairs;

CREATE TABLE staging.stg_oasst__messages_unindexed (
    row_key     UHUGEINT NOT NULL,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    message_id      VARCHAR NOT NULL,
    parent_id       VARCHAR,
    message_tree_id VARCHAR,
    role            VARCHAR NOT NULL,
    content         VARCHAR NOT NULL,
    rank            INTEGER,
    deleted         BOOLEAN NOT NULL,
    synthetic       BOOLEAN NOT NULL,
    review_result   BOOLEAN,
    lang            VARCHAR,
    created_at      TIMESTAMP
);
INSERT INTO staging.stg_oasst__messages_unindexed BY NAME SELECT * FROM staging.stg_oasst__messages;
DROP TABLE staging.stg_oasst__messages;
ALTER TABLE staging.stg_oasst__messages_unindexed RENAME TO stg_oasst__messages;

CREATE TABLE staging.stg_log__ratings_unindexed (
    row_key     UHUGEINT NOT NULL,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    log_name        VARCHAR NOT NULL,
    event_id        VARCHAR,
    event_at        TIMESTAMP,
    conversation_id VARCHAR,
    user_pseudonym  VARCHAR,
    model_version   VARCHAR,
    prompt          STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    completion      VARCHAR NOT NULL,
    rating_raw      VARCHAR NOT NULL,
    label           BOOLEAN,
    prompt_key      UHUGEINT
);
INSERT INTO staging.stg_log__ratings_unindexed BY NAME SELECT * FROM staging.stg_log__ratings;
DROP TABLE staging.stg_log__ratings;
ALTER TABLE staging.stg_log__ratings_unindexed RENAME TO stg_log__ratings;

CREATE TABLE staging.stg_log__pairs_unindexed (
    row_key     UHUGEINT NOT NULL,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    log_name        VARCHAR NOT NULL,
    event_id        VARCHAR,
    event_at        TIMESTAMP,
    conversation_id VARCHAR,
    user_pseudonym  VARCHAR,
    model_version   VARCHAR,
    prompt          STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen          VARCHAR NOT NULL,
    rejected        VARCHAR NOT NULL,
    prompt_key      UHUGEINT
);
INSERT INTO staging.stg_log__pairs_unindexed BY NAME SELECT * FROM staging.stg_log__pairs;
DROP TABLE staging.stg_log__pairs;
ALTER TABLE staging.stg_log__pairs_unindexed RENAME TO stg_log__pairs;

CREATE TABLE staging.stg_rlcd__pairs_unindexed (
    row_key     UHUGEINT NOT NULL,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    prompt           STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen           VARCHAR NOT NULL,
    rejected         VARCHAR NOT NULL,
    template_pair    VARCHAR NOT NULL,
    labeled_by       VARCHAR NOT NULL,
    margin           DOUBLE,
    generator_sha256 VARCHAR NOT NULL,
    templates_sha256 VARCHAR NOT NULL,
    prompt_key       UHUGEINT
);
CREATE TABLE IF NOT EXISTS staging.stg_rlcd__pairs AS SELECT * FROM staging.stg_rlcd__pairs_unindexed LIMIT 0;
INSERT INTO staging.stg_rlcd__pairs_unindexed BY NAME SELECT * FROM staging.stg_rlcd__pairs;
DROP TABLE staging.stg_rlcd__pairs;
ALTER TABLE staging.stg_rlcd__pairs_unindexed RENAME TO stg_rlcd__pairs;
-- an RLCD table made before migration 010 and not touched since has no prompt_key yet
UPDATE staging.stg_rlcd__pairs SET prompt_key = md5_number(to_json(prompt)) WHERE prompt_key IS NULL;
