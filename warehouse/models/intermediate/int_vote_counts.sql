-- How many votes each rated completion got, by its vote_key (int_votes). Nearly
-- every completion gets one vote, and a single vote needs no grouping on the wide
-- prompt and completion texts; only keys with several votes are grouped exactly
-- (int_multi_vote_tallies). A hash collision merely sends a completion down the exact path.
CREATE OR REPLACE TEMP TABLE int_vote_counts AS
SELECT vote_key, count(*) AS votes
FROM int_votes
GROUP BY vote_key
