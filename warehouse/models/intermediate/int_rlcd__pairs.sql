-- int_rlcd__pairs: pairs the generator wrote itself (RLCD), source 'synthetic:rlcd'.
-- margin: the reward model's score difference when rescored (RLCD-Rescore), else NULL:
-- a context label says which reply is meant to be better, not by how much.
-- votes_from_pair: like HH, the pair also votes its chosen reply up and its rejected one down.
CREATE OR REPLACE TEMP VIEW int_rlcd__pairs AS
SELECT 'synthetic:rlcd' AS source, prompt, prompt_key, chosen, rejected, margin, batch_id, true AS votes_from_pair,
       rowid AS staging_row
FROM staging.stg_rlcd__pairs
