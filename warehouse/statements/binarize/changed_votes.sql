-- The sources' votes ($vote_models) of the keys in binarize_scope, old and new, so a
-- completion's votes are tallied again in full (see changed_pairs.sql).
CREATE OR REPLACE TEMP TABLE binarize_changed_votes AS
SELECT *
FROM query_table($vote_models, true)
SEMI JOIN binarize_scope USING (source, prompt_key)
