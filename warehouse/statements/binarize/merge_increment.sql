-- An incremental build's materialization: each mart's rows of the keys in
-- binarize_scope are replaced by what the intermediate models built for them.
-- Runs inside binarize's transaction: readers see the marts before or after, whole.
DELETE FROM preference_pairs WHERE hash(source, prompt) IN (SELECT scope_key FROM binarize_scope);
INSERT INTO preference_pairs BY NAME SELECT * FROM int_preference_pairs;
DELETE FROM feedback WHERE hash(source, prompt) IN (SELECT scope_key FROM binarize_scope);
INSERT INTO feedback BY NAME SELECT * FROM int_feedback;
DELETE FROM feedback_ties WHERE hash(source, prompt) IN (SELECT scope_key FROM binarize_scope);
INSERT INTO feedback_ties BY NAME SELECT * FROM int_feedback_ties;
