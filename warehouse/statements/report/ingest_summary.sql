-- Files and rows per source over all ingest runs.
SELECT * FROM ingest_summary ORDER BY source
