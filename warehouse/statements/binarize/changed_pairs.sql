-- The sources' pairs ($pair_models) of the keys in binarize_scope: all of them, old
-- and new, so duplicates across files and batches are decided as in a full build.
-- int_pairs reads this table instead of the sources' models in an incremental build.
-- In two steps: the rows' places (staging_row) from the narrow key columns, then the
-- wide rows joined on their places. DuckDB pushes the places' range into the scans,
-- so only the stretch of each table holding them is read: a night's new rows and the
-- old rows of their prompts, not every prompt and reply ever staged (a join on the
-- keys alone read them all: 13.7 of a 10M warehouse's 16.5 s night, RESULTS.md run 7).
CREATE OR REPLACE TEMP TABLE binarize_changed_pairs AS
WITH places AS MATERIALIZED (
    SELECT source, staging_row
    FROM query_table($pair_models, true)
    SEMI JOIN binarize_scope USING (source, prompt_key)
)
SELECT *
FROM query_table($pair_models, true)
SEMI JOIN places USING (source, staging_row)
