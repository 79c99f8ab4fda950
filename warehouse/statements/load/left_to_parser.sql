-- The rows of a file its source's SQL did not stage, in file order, for the Python
-- parser: the rows it left (quirks, rejects) and the duplicates the INSERT skipped
-- (the parser stages them again, and the insert counts them as duplicates).
SELECT row_number, record FROM ({lines})
WHERE row_number NOT IN (SELECT row_number FROM {staging_table}
                         WHERE batch_id = $batch_id AND file_sha256 = $file_sha256)
ORDER BY row_number
