-- Completions whose up and down votes cancel out: they get no label.
-- Only completions with several votes can tie (see int_vote_counts).
SELECT count(*) FROM (
    SELECT 1
    FROM int_votes AS v
    JOIN int_vote_counts AS c ON c.vote_key = hash(v.source, v.prompt, v.completion)
    WHERE c.votes > 1
    GROUP BY v.source, v.prompt, v.completion
    HAVING sum(v.vote) = 0
)
