-- Staging's row_key: 128 bits (UHUGEINT) of sha256 over the row's identity (its
-- content hash, OASST's message_id, '<log>:<event_id>'). The loader computes the
-- same key in Python (tasks.ingest.load.row_key) and sends it as two UBIGINT
-- halves, as Arrow has no 128-bit integer; thumbs_row_key puts them together.
-- tests/sql/test_row_keys.py holds the two computations equal.

CREATE OR REPLACE TEMP MACRO thumbs_row_key(high, low) AS
    (CAST(high AS UHUGEINT) << 64) | CAST(low AS UHUGEINT);

CREATE OR REPLACE TEMP MACRO thumbs_row_key_of(identity) AS
    CAST('0x' || left(sha256(identity), 32) AS UHUGEINT);
