-- The keys an incremental build rebuilds: each (source, prompt) that a row of the new
-- batches gives a pair or a vote to ($changed_models: the sources' pairs and votes
-- models). Everything a mart row holds is decided by the rows of its own
-- (source, prompt): a pair's copies share it, and so do a completion's votes. So
-- deleting these keys' mart rows and building them again from every staging row of
-- the same keys gives what a full build gives.
-- A key is (source, prompt_key), the prompt's stored hash, so neither this nor the
-- rebuild reads a prompt: a collision only rebuilds one more prompt, since the delete
-- and the rebuild use the same key.
CREATE OR REPLACE TEMP TABLE binarize_scope AS
SELECT DISTINCT source, prompt_key
FROM query_table($changed_models, true)
WHERE batch_id IN (SELECT batch_id FROM binarize_new_batches)
