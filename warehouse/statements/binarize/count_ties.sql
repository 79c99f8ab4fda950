-- Completions whose up and down votes cancel out: they get no label.
-- Only completions with several votes can tie.
SELECT count(*) FROM int_multi_vote_tallies WHERE net_vote = 0
