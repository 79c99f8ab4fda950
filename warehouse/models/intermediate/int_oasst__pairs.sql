-- int_oasst__pairs: OASST preference pairs, best vs each lower-ranked reply
-- (docs/contract.md#binarization). Which messages and replies count is decided in int_oasst__ranked_pairs.
-- margin is NULL: OASST ranks carry no strength of preference.
CREATE OR REPLACE TEMP TABLE int_oasst__pairs AS
SELECT 'oasst' AS source, prompt, thumbs_prompt_key(prompt) AS prompt_key, chosen, rejected,
       NULL::DOUBLE AS margin, batch_id, rowid AS staging_row
FROM int_oasst__ranked_pairs
