-- Staging's row_key becomes 128 bits (UHUGEINT) of sha256 over the row's identity,
-- which it held as text until now (a 64-character content hash, OASST's
-- message_id, '<log>:<event_id>'). Every staged row is looked up in the primary
-- key, and the text key made that lookup the ingest's largest cost: 1M HH rows,
-- staging inserts 35.9 s with the text key, 26.3 s with this one. 128 bits keep a
-- false "duplicate" out of reach (p < 1e-20 at 1e9 rows).
--
-- The loader computes the same key in Python (tasks.ingest.row_key) and sends it
-- as two UBIGINT halves (Arrow has no 128-bit integer). DuckDB cannot change the
-- type of a key column in place, so each table is rebuilt; the rows loaded
-- before keep their identity, rehashed here.

CREATE OR REPLACE MACRO thumbs_row_key(high, low) AS
    (CAST(high AS UHUGEINT) << 64) | CAST(low AS UHUGEINT);

CREATE OR REPLACE MACRO thumbs_row_key_of(identity) AS
    CAST('0x' || left(sha256(identity), 32) AS UHUGEINT);

CREATE TABLE staging.stg_hh__pairs_rekeyed (
    row_key     UHUGEINT PRIMARY KEY,
    batch_id    VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row_number  BIGINT NOT NULL,
    prompt      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    chosen      VARCHAR NOT NULL,
    rejected    VARCHAR NOT NULL
);
INSERT INTO staging.stg_hh__pairs_rekeyed BY NAME
SELECT * REPLACE (thumbs_row_key_of(row_key) AS row_key) FROM staging.stg_hh__pairs;
DROP TABLE staging.stg_hh__pairs;
ALTER TABLE staging.stg_hh__pairs_rekeyed RENAME TO stg_hh__pairs;

CREATE TABLE staging.stg_shp__pairs_rekeyed (
    row_key        UHUGEINT PRIMARY KEY,
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
INSERT INTO staging.stg_shp__pairs_rekeyed BY NAME
SELECT * REPLACE (thumbs_row_key_of(row_key) AS row_key) FROM staging.stg_shp__pairs;
DROP TABLE staging.stg_shp__pairs;
ALTER TABLE staging.stg_shp__pairs_rekeyed RENAME TO stg_shp__pairs;

CREATE TABLE staging.stg_oasst__messages_rekeyed (
    row_key         UHUGEINT PRIMARY KEY,     -- of message_id
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
INSERT INTO staging.stg_oasst__messages_rekeyed BY NAME
SELECT * REPLACE (thumbs_row_key_of(row_key) AS row_key) FROM staging.stg_oasst__messages;
DROP TABLE staging.stg_oasst__messages;
ALTER TABLE staging.stg_oasst__messages_rekeyed RENAME TO stg_oasst__messages;

CREATE TABLE staging.stg_log__ratings_rekeyed (
    row_key         UHUGEINT PRIMARY KEY,
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
INSERT INTO staging.stg_log__ratings_rekeyed BY NAME
SELECT * REPLACE (thumbs_row_key_of(row_key) AS row_key) FROM staging.stg_log__ratings;
DROP TABLE staging.stg_log__ratings;
ALTER TABLE staging.stg_log__ratings_rekeyed RENAME TO stg_log__ratings;

CREATE TABLE staging.stg_log__pairs_rekeyed (
    row_key         UHUGEINT PRIMARY KEY,
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
INSERT INTO staging.stg_log__pairs_rekeyed BY NAME
SELECT * REPLACE (thumbs_row_key_of(row_key) AS row_key) FROM staging.stg_log__pairs;
DROP TABLE staging.stg_log__pairs;
ALTER TABLE staging.stg_log__pairs_rekeyed RENAME TO stg_log__pairs;
