INSERT INTO ingest_runs
    (batch_id, source, file, file_sha256, started_at, finished_at, rows_read, rows_loaded,
     rows_duplicate, rows_quarantined, status, options)
VALUES ($batch_id, $source, $file, $file_sha256, $started_at, now(), $rows_read, $rows_loaded,
        $rows_duplicate, $rows_quarantined, $status, $options)
