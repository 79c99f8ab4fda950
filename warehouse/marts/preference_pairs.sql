-- preference_pairs: one row per (source, prompt, chosen, rejected).
-- The same pair loaded from two files keeps the batch that loaded it first.
-- pair_id and split sit in one SELECT list, so the prompt's JSON, which both hash, is made once.
CREATE OR REPLACE TABLE preference_pairs AS
WITH identified AS (
    SELECT thumbs_pair_id(p.source, p.prompt, p.chosen, p.rejected) AS pair_id,
           p.source, p.prompt, p.chosen, p.rejected, p.margin,
           thumbs_split(p.prompt, $eval_fraction) AS split,
           b.ingested_at, p.batch_id
    FROM int_pairs AS p
    LEFT JOIN (SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id) AS b
           USING (batch_id)
)
SELECT pair_id, source, prompt, chosen, rejected, margin, split, ingested_at, batch_id
FROM identified
QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY ingested_at, batch_id) = 1
ORDER BY source, ingested_at, pair_id
