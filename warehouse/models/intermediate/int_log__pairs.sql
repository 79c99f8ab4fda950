-- int_log__pairs: business logs' A/B comparisons in the shape every source's pairs
-- take (int_pairs). Each log is a source of its own, 'log:<name>'. margin is NULL.
-- votes_from_pair: the pair also votes its chosen reply up and its rejected one down (int_votes).
CREATE OR REPLACE TEMP VIEW int_log__pairs AS
SELECT 'log:' || log_name AS source, prompt, prompt_key, chosen, rejected, NULL::DOUBLE AS margin, batch_id,
       true AS votes_from_pair, rowid AS staging_row
FROM staging.stg_log__pairs
