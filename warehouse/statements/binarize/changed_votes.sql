-- The sources' votes ($vote_models) of the keys in binarize_scope, old and new, so a
-- completion's votes are tallied again in full; read in two steps as in changed_pairs.sql,
-- from their places (vote_places.sql).
CREATE OR REPLACE TEMP TABLE binarize_changed_votes AS
SELECT *
FROM query_table($vote_models, true)
SEMI JOIN binarize_vote_places USING (source, staging_row)
