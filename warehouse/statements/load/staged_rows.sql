-- Load one chunk of parsed rows into a source's staging table; a row_key already
-- present is a duplicate and is skipped. The loader fills in the table's quoted
-- name, and only from the source's declaration (tasks/sources/base.py,
-- StagingTable): never from a file or the command line.
-- The chunk carries the key as two UBIGINT halves (Arrow has no 128-bit integer).
-- After row_key: the table's derived columns (StagingTable.derived), e.g. the prompt's key.
INSERT OR IGNORE INTO {staging_table} BY NAME
SELECT * EXCLUDE (row_key_high, row_key_low), thumbs_row_key(row_key_high, row_key_low) AS row_key{derived}
FROM staged_chunk
