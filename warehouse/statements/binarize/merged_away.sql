-- The mart rows an incremental merge is about to delete (the keys of
-- binarize_merge_scope), narrowed to what the build's counts group by: the build
-- reports its counts as the last build's, less these, plus the rows it inserts.
CREATE OR REPLACE TEMP TABLE binarize_merged_away_pairs AS
SELECT m.source, m.split
FROM preference_pairs AS m
SEMI JOIN binarize_merge_scope AS s ON m.source = s.source AND m.prompt_key = s.prompt_key;

CREATE OR REPLACE TEMP TABLE binarize_merged_away_feedback AS
SELECT m.source, m.label
FROM feedback AS m
SEMI JOIN binarize_merge_scope AS s ON m.source = s.source AND m.prompt_key = s.prompt_key;
