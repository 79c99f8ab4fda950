-- Load one chunk of parsed rows; a row_key already present is a duplicate and is skipped.
-- The chunk carries the key as two UBIGINT halves (Arrow has no 128-bit integer).
INSERT OR IGNORE INTO staging.stg_oasst__messages BY NAME
SELECT * EXCLUDE (row_key_high, row_key_low), thumbs_row_key(row_key_high, row_key_low) AS row_key
FROM staged_chunk
