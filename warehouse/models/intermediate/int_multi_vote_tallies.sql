-- The net vote on each completion voted on more than once, ties included (the
-- feedback mart keeps the rest; count_ties counts the ties).
-- up_pair/down_pair: the smallest id of the pairs that voted each way.
CREATE OR REPLACE TEMP TABLE int_multi_vote_tallies AS
SELECT v.source, v.prompt, v.completion, v.prompt_key,
       sum(v.vote) AS net_vote,
       min(v.pair_id) FILTER (WHERE v.vote > 0) AS up_pair,
       min(v.pair_id) FILTER (WHERE v.vote < 0) AS down_pair,
       min(v.batch_id) AS batch_id
FROM int_votes AS v
SEMI JOIN int_multi_vote_keys USING (vote_key)
GROUP BY v.source, v.prompt, v.completion, v.prompt_key  -- the key: the prompt's, so no more groups
