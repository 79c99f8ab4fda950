-- Load one chunk of parsed rows into a source's staging table; a row_key already
-- present, or earlier in the chunk, is a duplicate and is skipped. The loader fills
-- in the table's quoted name, and only from the source's declaration
-- (tasks/sources/base.py, StagingTable): never from a file or the command line.
-- The chunk carries the key as two UBIGINT halves (Arrow has no 128-bit integer), and
-- each row's place in it (chunk_row: an OASST tree gives many rows one row_number).
-- After row_key: the table's derived columns (StagingTable.derived), e.g. the prompt's key.
INSERT INTO {staging_table} BY NAME
SELECT * EXCLUDE (row_key_high, row_key_low, chunk_row), thumbs_row_key(row_key_high, row_key_low) AS row_key{derived}
FROM staged_chunk
ANTI JOIN (SELECT row_key FROM {staging_table}) AS present
    ON present.row_key = thumbs_row_key(staged_chunk.row_key_high, staged_chunk.row_key_low)
QUALIFY row_number() OVER (PARTITION BY row_key_high, row_key_low ORDER BY chunk_row) = 1
