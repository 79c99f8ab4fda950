-- int_feedback_ties: the rows of feedback_ties, the completions whose votes tie (no
-- label, left out of feedback), for the prompts this build covers (see int_preference_pairs).
CREATE OR REPLACE TEMP VIEW int_feedback_ties AS
SELECT source, prompt, completion, up_pair, down_pair, batch_id, prompt_key
FROM int_multi_vote_tallies
WHERE net_vote = 0
