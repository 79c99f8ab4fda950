-- Completions whose up and down votes cancel out: they get no label.
SELECT count(*) FROM (
    SELECT 1 FROM int_votes GROUP BY source, prompt, completion HAVING sum(vote) = 0
)
