-- preference_pairs: one row per (source, prompt, chosen, rejected).
-- The same pair loaded from two files keeps the batch that loaded it first.
-- pair_id and split sit in one SELECT list, so the prompt's JSON, which both hash, is made once.
-- Only pairs loaded more than once need choosing among their copies: the rest
-- skip the window over wide rows, found by int_pairs' 64-bit pair_key (a collision
-- merely sends a pair through the window too).
-- No ORDER BY: sorting every row of wide texts cost more than building them, and
-- readers that need an order ask for one (the snapshots do).
CREATE OR REPLACE TABLE preference_pairs AS
WITH copies AS (
    SELECT pair_key, count(*) AS copies
    FROM int_pairs
    GROUP BY pair_key
),
identified AS NOT MATERIALIZED (
    SELECT thumbs_pair_id(p.source, p.prompt, p.chosen, p.rejected) AS pair_id,
           p.source, p.prompt, p.chosen, p.rejected, p.margin,
           thumbs_split(p.prompt, $eval_fraction) AS split,
           b.ingested_at, p.batch_id, c.copies
    FROM int_pairs AS p
    JOIN copies AS c USING (pair_key)
    LEFT JOIN (SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id) AS b
           USING (batch_id)
)
SELECT pair_id, source, prompt, chosen, rejected, margin, split, ingested_at, batch_id
FROM identified
WHERE copies = 1
UNION ALL
SELECT pair_id, source, prompt, chosen, rejected, margin, split, ingested_at, batch_id
FROM identified
WHERE copies > 1
QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY ingested_at, batch_id) = 1
