-- The most recent files ingest runs looked at, newest first.
SELECT batch_id, source, file, status, started_at, rows_read, rows_loaded, rows_duplicate, rows_quarantined
FROM ingest_runs
ORDER BY started_at DESC, file
LIMIT $limit
