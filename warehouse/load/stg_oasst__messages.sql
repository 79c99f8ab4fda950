-- Load one chunk of parsed rows; a row_key already present is a duplicate and is skipped.
INSERT OR IGNORE INTO staging.stg_oasst__messages BY NAME SELECT * FROM staged_chunk
