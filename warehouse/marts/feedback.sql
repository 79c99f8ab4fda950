-- feedback: the thumbs table, one row per rated completion (source, prompt, completion).
-- A completion voted on more than once (SHP comments chosen in one pair and
-- rejected in another; log replies rated by several users) gets the label of its
-- net vote; a tie carries no signal and is left out (counted by
-- `thumbs binarize` as tied completions). pair_id: the smallest id of the pairs that voted the winning way.
-- feedback_id and split sit in one SELECT list, so the prompt's JSON, which both hash, is made once.
CREATE OR REPLACE TABLE feedback AS
WITH tallied AS (
    SELECT source, prompt, completion,
           sum(vote) AS net_vote,
           min(pair_id) FILTER (WHERE vote > 0) AS up_pair,
           min(pair_id) FILTER (WHERE vote < 0) AS down_pair,
           min(batch_id) AS batch_id
    FROM int_votes
    GROUP BY source, prompt, completion
    HAVING sum(vote) <> 0
)
SELECT thumbs_feedback_id(t.source, t.prompt, t.completion, t.net_vote > 0) AS feedback_id,
       t.source, t.prompt, t.completion,
       t.net_vote > 0 AS label,
       CASE WHEN t.net_vote > 0 THEN t.up_pair ELSE t.down_pair END AS pair_id,
       thumbs_split(t.prompt, $eval_fraction) AS split,
       b.ingested_at, t.batch_id
FROM tallied AS t
LEFT JOIN (SELECT batch_id, min(finished_at) AS ingested_at FROM ingest_runs GROUP BY batch_id) AS b
       USING (batch_id)
ORDER BY t.source, b.ingested_at, feedback_id
