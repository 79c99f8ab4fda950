-- Per source: files and rows read, loaded, duplicate and quarantined, over all runs.
CREATE OR REPLACE VIEW ingest_summary AS
SELECT source,
       count(*) FILTER (WHERE status = 'loaded') AS files_loaded,
       count(*) FILTER (WHERE status = 'skipped') AS files_skipped,
       sum(rows_read) AS rows_read, sum(rows_loaded) AS rows_loaded,
       sum(rows_duplicate) AS rows_duplicate, sum(rows_quarantined) AS rows_quarantined
FROM ingest_runs
GROUP BY ALL
ORDER BY ALL
