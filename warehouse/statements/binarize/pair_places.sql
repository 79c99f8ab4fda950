-- The places (staging_row) and batches of the sources' pairs ($pair_models) of the keys in
-- binarize_scope, from the narrow key columns alone: changed_pairs.sql reads the
-- wide rows at these places, merge_scope.sql finds the keys the marts already hold.
CREATE OR REPLACE TEMP TABLE binarize_pair_places AS
SELECT source, prompt_key, staging_row, batch_id
FROM query_table($pair_models, true)
SEMI JOIN binarize_scope USING (source, prompt_key)
