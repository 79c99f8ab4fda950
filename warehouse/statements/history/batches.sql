-- The ingest runs that loaded a snapshot's rows, with their files and options (a
-- generated file's options say what generated it: tasks/generate/rlcd.py).
SELECT batch_id, source, file, file_sha256, rows_loaded, strftime(finished_at, '%Y-%m-%d %H:%M:%S'), options
FROM ingest_runs
WHERE status = 'loaded' AND list_contains(CAST($batch_ids AS VARCHAR[]), batch_id)
ORDER BY finished_at, file
