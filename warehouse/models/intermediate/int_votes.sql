-- One vote per (rated completion, occasion): +1 thumbs up, -1 thumbs down.
-- Pairs vote for their chosen and against their rejected reply, each pair once (its
-- later copies, int_pair_repeats, do not vote again), when their source's pairs
-- model says votes_from_pair. OASST's has no such column (NULL here): its thumbs
-- come from its ranks, int_oasst__votes.
-- Sources that rate replies add their int_<source>__votes models: the variable
-- binarize_vote_models lists them (tasks/binarize/marts.py, from the source registry;
-- a view cannot hold a query parameter).
-- vote_key: a 64-bit hash of (source, prompt_key, completion); see int_multi_vote_keys.
-- A view, not a table: its readers are int_multi_vote_keys (the narrow key columns
-- only) and two that stream it against those few keys, so no build writes every
-- vote's prompt (materialized, it was 7-13 s of a 1M-pair full build).
-- feedback_id: a pair's vote carries the id of the thumb it makes alone (int_pairs).
CREATE OR REPLACE TEMP VIEW int_votes AS
WITH voting_pairs AS NOT MATERIALIZED (
    SELECT p.source, p.prompt, p.prompt_key, p.chosen, p.rejected, p.pair_id, p.batch_id,
           p.chosen_feedback_id, p.rejected_feedback_id
    FROM int_pairs AS p
    ANTI JOIN int_pair_repeats AS r ON p.rowid = r.pair_row
    WHERE p.votes_from_pair
)
SELECT *, hash(source, prompt_key, completion) AS vote_key
FROM (
    SELECT source, prompt, prompt_key, chosen AS completion, 1 AS vote, pair_id, batch_id,
           chosen_feedback_id AS feedback_id
    FROM voting_pairs
    UNION ALL
    SELECT source, prompt, prompt_key, rejected, -1, pair_id, batch_id, rejected_feedback_id
    FROM voting_pairs
    UNION ALL
    SELECT source, prompt, prompt_key, completion, vote, pair_id, batch_id, NULL::VARCHAR
    FROM query_table(getvariable('binarize_vote_models'), true)
)
