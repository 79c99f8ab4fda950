-- One vote per (rated completion, occasion): +1 thumbs up, -1 thumbs down.
-- Pairs vote for their chosen and against their rejected reply, except OASST,
-- whose thumbs come from its ranks (int_oasst__ratings: best up, worst down).
-- Direct ratings from logs vote as given; neutral ratings (label NULL) do not vote.
-- vote_key: a 64-bit hash of (source, prompt, completion); see int_vote_counts.
CREATE OR REPLACE TEMP TABLE int_votes AS
SELECT *, hash(source, prompt, completion) AS vote_key
FROM (
    SELECT source, prompt, chosen AS completion, 1 AS vote, pair_id, batch_id
    FROM preference_pairs WHERE source <> 'oasst'
    UNION ALL
    SELECT source, prompt, rejected, -1, pair_id, batch_id
    FROM preference_pairs WHERE source <> 'oasst'
    UNION ALL
    SELECT source, prompt, completion, CASE WHEN label THEN 1 ELSE -1 END,
           thumbs_pair_id(source, prompt, pair_chosen, pair_rejected), batch_id
    FROM int_oasst__ratings
    UNION ALL
    SELECT 'log:' || log_name, prompt, completion, CASE WHEN label THEN 1 ELSE -1 END, NULL, batch_id
    FROM staging.stg_log__ratings WHERE label IS NOT NULL
)
