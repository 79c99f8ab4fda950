-- The row numbers of one file's rows that are in staging.
SELECT row_number FROM {staging_table} WHERE batch_id = $batch_id AND file_sha256 = $file_sha256
