-- The sources' pairs ($pair_models) of the keys in binarize_scope: all of them, old
-- and new, so duplicates across files and batches are decided as in a full build.
-- int_pairs reads binarize_changed_pairs instead of the sources' models in an
-- incremental build.
-- In two steps: the rows' places (staging_row) from the narrow key columns
-- (pair_places.sql), then the wide rows joined on their places. DuckDB pushes the
-- places' range into the scans, so only the stretch of each table holding them is
-- read: a night's new rows and the old rows of their prompts, not every prompt and
-- reply ever staged (a join on the keys alone read them all: 13.7 of a 10M
-- warehouse's 16.5 s night, RESULTS.md run 7).
CREATE OR REPLACE TEMP TABLE binarize_changed_pairs AS
SELECT *
FROM query_table($pair_models, true)
SEMI JOIN binarize_pair_places USING (source, staging_row)
