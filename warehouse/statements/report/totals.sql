-- The report's headline numbers, one row.
SELECT (SELECT count(*) FROM feedback) AS feedback,
       (SELECT count(*) FILTER (WHERE label) FROM feedback) AS thumbs_up,
       (SELECT count(*) FROM preference_pairs) AS preference_pairs,
       (SELECT count(*) FROM quarantine) AS quarantined,
       (SELECT count(*) FROM ingest_runs WHERE status = 'loaded') AS files_loaded,
       (SELECT count(*) FROM checkpoints) AS checkpoints
