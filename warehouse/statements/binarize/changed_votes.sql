-- The sources' votes ($vote_models) of the keys in binarize_scope, old and new, so a
-- completion's votes are tallied again in full; read in two steps as in changed_pairs.sql.
CREATE OR REPLACE TEMP TABLE binarize_changed_votes AS
WITH places AS MATERIALIZED (
    SELECT source, staging_row
    FROM query_table($vote_models, true)
    SEMI JOIN binarize_scope USING (source, prompt_key)
)
SELECT *
FROM query_table($vote_models, true)
SEMI JOIN places USING (source, staging_row)
