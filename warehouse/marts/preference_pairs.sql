-- preference_pairs: one row per (source, prompt, chosen, rejected).
-- The same pair loaded from two files keeps the batch that loaded it first.
CREATE OR REPLACE TABLE preference_pairs AS
WITH identified AS (
    SELECT thumbs_pair_id(p.source, p.prompt, p.chosen, p.rejected) AS pair_id,
           p.source, p.prompt, p.chosen, p.rejected, p.margin, p.batch_id,
           b.ingested_at
    FROM int_pairs AS p
    LEFT JOIN (SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id) AS b
           USING (batch_id)
)
SELECT pair_id, source, prompt, chosen, rejected, margin,
       thumbs_split(prompt, $eval_fraction) AS split, ingested_at, batch_id
FROM identified
QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY ingested_at, batch_id) = 1
ORDER BY source, ingested_at, pair_id
