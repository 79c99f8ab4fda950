-- The identities of pairs and thumbs: 128 bits of sha256 over the canonical JSON of
-- {source, prompt, chosen, rejected} or {source, prompt, completion, label}.
-- Analysts join on these ids across rebuilds and versions: a change to their values
-- needs a new id, never an edit here (tests/sql/test_macros.py holds these to the
-- definitions of migrations 002 and 004).
--
-- Each has a *_of_json variant taking to_json(prompt), for a model that has the
-- prompt's JSON at hand: making it was most of binarize's time, and a feedback
-- row's prompt is its pair's.

-- to_json of the whole struct, written out field by field: the same text, so the
-- same hash. coalesce: to_json(NULL) is NULL where the struct's JSON says null.
CREATE OR REPLACE TEMP MACRO thumbs_pair_id_of_json(source, prompt_json, chosen, rejected) AS
    left(sha256('{"source":' || coalesce(to_json(source), 'null')
                || ',"prompt":' || coalesce(prompt_json, 'null')
                || ',"chosen":' || coalesce(to_json(chosen), 'null')
                || ',"rejected":' || coalesce(to_json(rejected), 'null') || '}'), 32);

CREATE OR REPLACE TEMP MACRO thumbs_feedback_id_of_json(source, prompt_json, completion, label) AS
    left(sha256('{"source":' || coalesce(to_json(source), 'null')
                || ',"prompt":' || coalesce(prompt_json, 'null')
                || ',"completion":' || coalesce(to_json(completion), 'null')
                || ',"label":' || coalesce(to_json(label), 'null') || '}'), 32);

CREATE OR REPLACE TEMP MACRO thumbs_pair_id(source, prompt, chosen, rejected) AS
    thumbs_pair_id_of_json(source, to_json(prompt), chosen, rejected);

CREATE OR REPLACE TEMP MACRO thumbs_feedback_id(source, prompt, completion, label) AS
    thumbs_feedback_id_of_json(source, to_json(prompt), completion, label);
