-- The identities and the split of 002, with the same values, cheaper to compute.
-- Analysts join on these ids: a change to their values needs a new id, not a migration.
--
-- Each has a *_of_json variant taking to_json(prompt), for a model that has the
-- prompt's JSON at hand: making it was most of binarize's time, and a feedback
-- row's prompt is its pair's. The 002 macros now call those with to_json(prompt).

-- to_json of the whole struct, written out field by field: the same text, so the
-- same hash. coalesce: to_json(NULL) is NULL where the struct's JSON says null.
CREATE OR REPLACE MACRO thumbs_pair_id_of_json(source, prompt_json, chosen, rejected) AS
    left(sha256('{"source":' || coalesce(to_json(source), 'null')
                || ',"prompt":' || coalesce(prompt_json, 'null')
                || ',"chosen":' || coalesce(to_json(chosen), 'null')
                || ',"rejected":' || coalesce(to_json(rejected), 'null') || '}'), 32);

CREATE OR REPLACE MACRO thumbs_feedback_id_of_json(source, prompt_json, completion, label) AS
    left(sha256('{"source":' || coalesce(to_json(source), 'null')
                || ',"prompt":' || coalesce(prompt_json, 'null')
                || ',"completion":' || coalesce(to_json(completion), 'null')
                || ',"label":' || coalesce(to_json(label), 'null') || '}'), 32);

-- md5_number(prompt_json) % 1000000 as in 002, without UHUGEINT division (it cost
-- three times the md5): h = high * 2^64 + low and 2^64 = 551616 (mod 10^6), so
-- h mod 10^6 = (high mod 10^6 * 551616 + low mod 10^6) mod 10^6, all in UBIGINT.
-- DuckDB computes the repeated md5_number(...) once.
CREATE OR REPLACE MACRO thumbs_split_of_json(prompt_json, eval_fraction) AS
    CASE WHEN (((md5_number(prompt_json) >> 64)::UBIGINT % 1000000 * 551616
                + (md5_number(prompt_json) & 18446744073709551615::UHUGEINT)::UBIGINT % 1000000)
               % 1000000) / 1000000.0 < eval_fraction
         THEN 'eval' ELSE 'train' END;

CREATE OR REPLACE MACRO thumbs_pair_id(source, prompt, chosen, rejected) AS
    thumbs_pair_id_of_json(source, to_json(prompt), chosen, rejected);

CREATE OR REPLACE MACRO thumbs_feedback_id(source, prompt, completion, label) AS
    thumbs_feedback_id_of_json(source, to_json(prompt), completion, label);

CREATE OR REPLACE MACRO thumbs_split(prompt, eval_fraction) AS
    thumbs_split_of_json(to_json(prompt), eval_fraction);
