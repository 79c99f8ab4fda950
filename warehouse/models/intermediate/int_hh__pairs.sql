-- int_hh__pairs: HH's staged pairs in the shape every source's pairs take (int_pairs).
-- margin is NULL: HH says which reply is better, not by how much.
-- votes_from_pair: the pair also votes its chosen reply up and its rejected one down (int_votes).
-- staging_row: the row's place in its staging table, for an incremental build to read
-- only the stretch of the table its rows lie in (statements/binarize/changed_pairs.sql).
CREATE OR REPLACE TEMP VIEW int_hh__pairs AS
SELECT 'hh' AS source, prompt, prompt_key, chosen, rejected, NULL::DOUBLE AS margin, batch_id, true AS votes_from_pair,
       rowid AS staging_row
FROM staging.stg_hh__pairs
