-- int_shp__pairs: SHP's staged pairs in the shape every source's pairs take (int_pairs).
-- margin is the score ratio: the preferred comment's net votes over the other's.
-- Binarize's shp_min_score_ratio (NULL = no filter; a view reads binarize's options
-- from a DuckDB variable, since a view cannot hold a query parameter) drops pairs
-- whose ratio is too small to be a clear preference.
-- votes_from_pair: the pair also votes its chosen reply up and its rejected one down (int_votes).
CREATE OR REPLACE TEMP VIEW int_shp__pairs AS
SELECT 'shp' AS source, prompt, prompt_key, chosen, rejected, score_ratio AS margin, batch_id, true AS votes_from_pair,
       rowid AS staging_row
FROM staging.stg_shp__pairs
WHERE CAST(getvariable('binarize_options').shp_min_score_ratio AS DOUBLE) IS NULL
   OR score_ratio >= CAST(getvariable('binarize_options').shp_min_score_ratio AS DOUBLE)
