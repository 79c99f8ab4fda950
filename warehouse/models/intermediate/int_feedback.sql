-- int_feedback: the rows of feedback, the thumbs table, one per rated completion
-- (source, prompt, completion), for the prompts this build covers (see int_preference_pairs).
-- A completion voted on more than once (SHP comments chosen in one pair and
-- rejected in another; log replies rated by several users) gets the label of its
-- net vote; a tie carries no signal and is left out (counted by
-- `thumbs binarize` as tied completions). pair_id: the smallest id of the pairs that voted the winning way.
-- feedback_id: a pair's single vote brings its thumb's id (int_pairs); the rest are hashed here.
-- eval_fraction comes from the binarize_options variable: a view cannot hold a query parameter.
-- split: from the prompt's stored key (warehouse/macros/split.sql).
-- No ORDER BY: sorting every row of wide texts cost more than building them, and
-- readers that need an order ask for one (the snapshots do).
CREATE OR REPLACE TEMP VIEW int_feedback AS
WITH single_votes AS (
    SELECT v.source, v.prompt, v.prompt_key, v.completion, v.vote AS net_vote, v.feedback_id,
           CASE WHEN v.vote > 0 THEN v.pair_id END AS up_pair,
           CASE WHEN v.vote < 0 THEN v.pair_id END AS down_pair,
           v.batch_id
    FROM int_votes AS v
    ANTI JOIN int_multi_vote_keys USING (vote_key)
),
tallied AS (
    SELECT * FROM single_votes
    UNION ALL
    SELECT source, prompt, prompt_key, completion, net_vote, NULL, up_pair, down_pair, batch_id
    FROM int_multi_vote_tallies
    WHERE net_vote <> 0
)
SELECT coalesce(t.feedback_id, thumbs_feedback_id(t.source, t.prompt, t.completion, t.net_vote > 0)) AS feedback_id,
       t.source, t.prompt, t.completion,
       t.net_vote > 0 AS label,
       CASE WHEN t.net_vote > 0 THEN t.up_pair ELSE t.down_pair END AS pair_id,
       thumbs_split_of_key(t.prompt_key, CAST(getvariable('binarize_options').eval_fraction AS DOUBLE)) AS split,
       b.ingested_at, t.batch_id, t.prompt_key
FROM tallied AS t
LEFT JOIN (SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id) AS b
       USING (batch_id)
