-- How many prompts have 1, 2, ... pairs, per source.
SELECT * FROM pairs_per_prompt ORDER BY source, pairs_per_prompt
