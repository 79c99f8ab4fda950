-- feedback, rebuilt in full: the thumbs table, one row per rated completion; the rows
-- and why are in int_feedback. An incremental build replaces only the changed
-- prompts' rows instead (statements/binarize/merge_increment.sql).
CREATE OR REPLACE TABLE feedback AS
SELECT * FROM int_feedback
