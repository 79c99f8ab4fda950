-- The rated completions voted on more than once, by vote_key (int_votes). Nearly every
-- completion gets one vote, and a single vote needs no grouping on the wide prompt
-- and completion texts: int_feedback takes those straight from int_votes, leaving
-- out these keys, which int_multi_vote_tallies groups exactly. Few keys: the two
-- read int_votes against them (anti- and semi-join), so neither builds a table of
-- wide rows. A hash collision merely sends a completion down the exact path.
CREATE OR REPLACE TEMP TABLE int_multi_vote_keys AS
SELECT vote_key
FROM int_votes
GROUP BY vote_key
HAVING count(*) > 1
