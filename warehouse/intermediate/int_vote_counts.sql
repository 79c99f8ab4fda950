-- How many votes each rated completion got, keyed by a 64-bit hash of
-- (source, prompt, completion). Nearly every completion gets one vote, and a
-- single vote needs no grouping on the wide prompt and completion texts; the
-- models group exactly only where a key has several votes. A hash collision
-- merely sends a completion down the exact path.
CREATE OR REPLACE TEMP TABLE int_vote_counts AS
SELECT hash(source, prompt, completion) AS vote_key, count(*) AS votes
FROM int_votes
GROUP BY ALL
