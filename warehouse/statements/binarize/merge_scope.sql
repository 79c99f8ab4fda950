-- The keys of binarize_scope whose rows the marts may already hold, for the merge to
-- delete: those with a staging row of a batch built before. A key all of whose rows
-- came tonight has none, and most nights' new prompts are new: deleting by the whole
-- scope scanned every mart key (1.5 s a night on a 10M warehouse). OASST's keys all
-- count: its pairs carry the latest batch among the messages they read, so an old
-- pair touched tonight looks new.
CREATE OR REPLACE TEMP TABLE binarize_merge_scope AS
SELECT source, prompt_key
FROM (SELECT source, prompt_key, batch_id FROM binarize_pair_places
      UNION ALL
      SELECT source, prompt_key, batch_id FROM binarize_vote_places)
WHERE batch_id NOT IN (SELECT batch_id FROM binarize_new_batches)
UNION
SELECT source, prompt_key FROM binarize_scope WHERE source = 'oasst'
