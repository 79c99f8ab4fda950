-- int_preference_pairs: the rows of preference_pairs, one per (source, prompt, chosen, rejected),
-- for the prompts this build covers: all of them when full, the changed ones when
-- incremental (marts/preference_pairs.sql, statements/binarize/merge_increment.sql).
-- The same pair loaded from two files keeps the batch that loaded it first: the
-- later copies (int_pair_repeats) are left out. Ids and splits come from int_pairs.
-- No ORDER BY: sorting every row of wide texts cost more than building them, and
-- readers that need an order ask for one (the snapshots do).
CREATE OR REPLACE TEMP VIEW int_preference_pairs AS
SELECT p.pair_id, p.source, p.prompt, p.chosen, p.rejected, p.margin, p.split, b.ingested_at, p.batch_id,
       p.prompt_key
FROM int_pairs AS p
ANTI JOIN int_pair_repeats AS r ON p.rowid = r.pair_row
LEFT JOIN (SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id) AS b
       USING (batch_id)
