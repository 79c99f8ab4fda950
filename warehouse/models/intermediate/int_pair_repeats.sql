-- int_pair_repeats: the rows of int_pairs (by rowid) that repeat a pair loaded
-- before. Of a pair's copies, the one from the earliest ingest (ingest_runs, then
-- batch_id) is kept; the others are listed here, for preference_pairs and int_votes
-- to leave out. Only pairs whose pair_key occurs more than once are ranked, on
-- narrow columns: the wide rows of the rest are never sorted (a pair_key collision
-- merely ranks a few more).
CREATE OR REPLACE TEMP TABLE int_pair_repeats AS
WITH repeated_keys AS (
    SELECT pair_key FROM int_pairs GROUP BY pair_key HAVING count(*) > 1
),
batch_loaded AS (
    SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id
)
SELECT p.rowid AS pair_row
FROM int_pairs AS p
LEFT JOIN batch_loaded AS b USING (batch_id)
WHERE p.pair_key IN (SELECT pair_key FROM repeated_keys)
QUALIFY row_number() OVER (PARTITION BY p.pair_id ORDER BY b.ingested_at, p.batch_id) > 1
