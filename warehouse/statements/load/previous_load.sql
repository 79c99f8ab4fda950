-- The batch that already loaded this exact file content for this source, if any.
SELECT batch_id FROM ingest_runs
WHERE source = $source AND file_sha256 = $file_sha256 AND status = 'loaded'
ORDER BY started_at LIMIT 1
