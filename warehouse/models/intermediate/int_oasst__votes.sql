-- int_oasst__votes: OASST's thumbs (int_oasst__ratings: by default the best reply
-- up, the worst down) as votes, each pointing at the pair it comes from.
CREATE OR REPLACE TEMP VIEW int_oasst__votes AS
SELECT source, prompt, thumbs_prompt_key(prompt) AS prompt_key, completion,
       CASE WHEN label THEN 1 ELSE -1 END AS vote,
       thumbs_pair_id(source, prompt, pair_chosen, pair_rejected) AS pair_id, batch_id,
       rowid AS staging_row
FROM int_oasst__ratings
