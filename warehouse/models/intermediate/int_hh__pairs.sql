-- int_hh__pairs: HH's staged pairs in the shape every source's pairs take (int_pairs).
-- margin is NULL: HH says which reply is better, not by how much.
-- votes_from_pair: the pair also votes its chosen reply up and its rejected one down (int_votes).
CREATE OR REPLACE TEMP VIEW int_hh__pairs AS
SELECT 'hh' AS source, prompt, prompt_key, chosen, rejected, NULL::DOUBLE AS margin, batch_id, true AS votes_from_pair
FROM staging.stg_hh__pairs
