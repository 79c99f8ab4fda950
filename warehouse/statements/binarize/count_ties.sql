-- Completions whose up and down votes cancel out: they get no label.
SELECT count(*) FROM feedback_ties
