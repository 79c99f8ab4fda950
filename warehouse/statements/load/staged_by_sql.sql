-- Stage the rows a source's SQL parsed (Source.stage_sql) from one batch of a file's
-- lines; a row_key already present is a duplicate and is skipped. Returns the row
-- numbers staged: the loader gives the batch's other lines to the source's parser.
-- The loader fills in the table and its columns from the source's declaration, and
-- the SQL from warehouse/.
INSERT OR IGNORE INTO {staging_table} (row_key, batch_id, file_sha256, row_number, {columns})
SELECT row_key, $batch_id, $file_sha256, row_number, {columns} FROM ({staged}) WHERE staged
RETURNING row_number
