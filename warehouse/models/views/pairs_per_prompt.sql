-- How many pairs share a prompt (OASST and SHP give several per prompt, HH one).
CREATE OR REPLACE VIEW pairs_per_prompt AS
WITH per_prompt AS (
    SELECT source, to_json(prompt) AS prompt_json, count(*) AS pairs
    FROM preference_pairs GROUP BY ALL
)
SELECT source, pairs AS pairs_per_prompt, count(*) AS prompts
FROM per_prompt
GROUP BY ALL
ORDER BY ALL
