-- int_log__votes: business logs' rated replies as votes (int_votes), as given:
-- up +1, down -1. Neutral ratings (label NULL) do not vote. A rating comes from
-- no pair: pair_id is NULL.
CREATE OR REPLACE TEMP VIEW int_log__votes AS
SELECT 'log:' || log_name AS source, prompt, prompt_key, completion, CASE WHEN label THEN 1 ELSE -1 END AS vote,
       NULL::VARCHAR AS pair_id, batch_id, rowid AS staging_row
FROM staging.stg_log__ratings
WHERE label IS NOT NULL
