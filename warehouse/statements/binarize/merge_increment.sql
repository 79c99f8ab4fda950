-- An incremental build's materialization: each mart's rows of the keys in
-- binarize_scope are replaced by what the intermediate models built for them. Only
-- the keys in binarize_merge_scope can have rows to delete (merge_scope.sql).
-- Runs inside binarize's transaction: readers see the marts before or after, whole.
DELETE FROM preference_pairs AS m USING binarize_merge_scope AS s
WHERE m.source = s.source AND m.prompt_key = s.prompt_key;
INSERT INTO preference_pairs BY NAME SELECT * FROM int_preference_pairs;
DELETE FROM feedback AS m USING binarize_merge_scope AS s
WHERE m.source = s.source AND m.prompt_key = s.prompt_key;
INSERT INTO feedback BY NAME SELECT * FROM int_feedback;
DELETE FROM feedback_ties AS m USING binarize_merge_scope AS s
WHERE m.source = s.source AND m.prompt_key = s.prompt_key;
INSERT INTO feedback_ties BY NAME SELECT * FROM int_feedback_ties;
