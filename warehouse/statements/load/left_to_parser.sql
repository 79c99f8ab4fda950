-- The rows of a file its source's SQL did not stage, in file order, for the Python
-- parser: the rows it left (quirks, rejects) and the duplicates the INSERT skipped
-- (the parser stages them again, and the insert counts them as duplicates).
-- thumbs_rows_not_staged: their row numbers, found by the loader
-- (tasks/ingest/in_duckdb.py), usually a small share of the file.
SELECT row_number, record FROM ({lines})
WHERE row_number IN (SELECT row_number FROM thumbs_rows_not_staged)
ORDER BY row_number
