-- Stage the rows a source's SQL parsed (Source.stage_sql) from one batch of a file's
-- lines; a row_key already present is a duplicate and is skipped. Returns the row
-- numbers staged: the loader gives the batch's other lines to the source's parser.
-- The loader fills in the table and its columns from the source's declaration, and
-- the SQL from warehouse/; the values also compute the table's derived columns
-- (StagingTable.derived, e.g. the prompt's key) from the staged values.
-- Present keys are found by an anti-join on the narrow row_key column, not an index
-- (migration 012 says why); the ingest's one transaction sees its earlier batches.
INSERT INTO {staging_table} (row_key, batch_id, file_sha256, row_number, {columns})
SELECT row_key, $batch_id, $file_sha256, row_number, {values}
FROM ({staged}) AS batch_rows
ANTI JOIN (SELECT row_key FROM {staging_table}) AS present USING (row_key)
WHERE staged
-- A row repeated inside the batch: only its first line, as the Python route would. The
-- INSERT runs on several threads, so without this either copy could be the one kept.
QUALIFY row_number() OVER (PARTITION BY row_key ORDER BY row_number) = 1
RETURNING row_number
