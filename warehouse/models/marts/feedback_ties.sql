-- feedback_ties, rebuilt in full: the completions whose up and down votes cancel out
-- (int_feedback_ties). An incremental build replaces only the changed prompts' rows
-- instead (statements/binarize/merge_increment.sql).
CREATE OR REPLACE TABLE feedback_ties AS
SELECT * FROM int_feedback_ties
