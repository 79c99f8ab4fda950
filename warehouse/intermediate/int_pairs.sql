-- Every preference pair from every source, before identities and splits.
-- Runs after int_oasst__pairs. $shp_min_score_ratio (NULL = no filter) drops SHP
-- pairs whose score ratio is too small to be a clear preference.
-- pair_key: a 64-bit hash of the pair, for preference_pairs to find the pairs loaded
-- more than once without comparing their texts.
CREATE OR REPLACE TEMP TABLE int_pairs AS
SELECT *, hash(source, prompt, chosen, rejected) AS pair_key
FROM (
    SELECT 'hh' AS source, prompt, chosen, rejected, CAST(NULL AS DOUBLE) AS margin, batch_id
    FROM staging.stg_hh__pairs
    UNION ALL
    SELECT 'shp', prompt, chosen, rejected, score_ratio, batch_id
    FROM staging.stg_shp__pairs
    WHERE CAST($shp_min_score_ratio AS DOUBLE) IS NULL OR score_ratio >= CAST($shp_min_score_ratio AS DOUBLE)
    UNION ALL
    SELECT source, prompt, chosen, rejected, margin, batch_id
    FROM int_oasst__pairs
    UNION ALL
    SELECT 'log:' || log_name, prompt, chosen, rejected, NULL, batch_id
    FROM staging.stg_log__pairs
)
