-- The sources' pairs ($pair_models) of the keys in binarize_scope: all of them, old
-- and new, so duplicates across files and batches are decided as in a full build.
-- int_pairs reads this table instead of the sources' models in an incremental build.
CREATE OR REPLACE TEMP TABLE binarize_changed_pairs AS
SELECT *
FROM query_table($pair_models, true)
SEMI JOIN binarize_scope USING (source, prompt_key)
