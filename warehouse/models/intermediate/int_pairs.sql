-- Every preference pair from every source, before deduplication: the UNION ALL of
-- the registered sources' int_<source>__pairs models. $pair_models lists them
-- (tasks/binarize/marts.py, from the source registry); query_table unions them
-- by column name, NULL where a model lacks one.
-- pair_key: a 64-bit hash of the pair, for int_pair_repeats to find the pairs loaded
-- more than once without comparing their texts (the prompt by its stored key).
-- The split comes from the prompt's stored key (warehouse/macros/split.sql).
-- chosen_feedback_id, rejected_feedback_id: the ids of the thumbs the pair's two votes
-- make when they are their reply's only vote (nearly always; int_feedback), here
-- because they hash the prompt's JSON as pair_id does: DuckDB makes the JSON once
-- for the three, where int_feedback made it again for each of a pair's two thumbs.
-- preference_pairs and int_votes read the ids and split from here.
CREATE OR REPLACE TEMP TABLE int_pairs AS
SELECT *,
       hash(source, prompt_key, chosen, rejected) AS pair_key,
       thumbs_pair_id_of_json(source, to_json(prompt), chosen, rejected) AS pair_id,
       thumbs_feedback_id_of_json(source, to_json(prompt), chosen, true) AS chosen_feedback_id,
       thumbs_feedback_id_of_json(source, to_json(prompt), rejected, false) AS rejected_feedback_id,
       thumbs_split_of_key(prompt_key, $eval_fraction) AS split
FROM query_table($pair_models, true)
