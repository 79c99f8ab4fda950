-- preference_pairs, rebuilt in full: one row per (source, prompt, chosen, rejected);
-- the rows and why are in int_preference_pairs. An incremental build replaces
-- only the changed prompts' rows instead (statements/binarize/merge_increment.sql).
CREATE OR REPLACE TABLE preference_pairs AS
SELECT * FROM int_preference_pairs
