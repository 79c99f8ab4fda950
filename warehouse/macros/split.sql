-- train/eval by a hash of the prompt alone (not the source), so one prompt never
-- sits in both splits, whichever sources it came from. A prompt's split must not
-- change between versions (tests/sql/test_macros.py holds it to migrations 002 and 004).

-- prompt_key: md5_number of the prompt's JSON, the hash the split is made from.
-- Staging stores it with every row that has a prompt, and the marts carry it: an
-- incremental build finds a prompt's rows by it without reading their prompts, and
-- a build takes each row's split from it without hashing the prompt again.
CREATE OR REPLACE TEMP MACRO thumbs_prompt_key(prompt) AS md5_number(to_json(prompt));

-- prompt_key % 1000000, without UHUGEINT division (it cost three times the md5):
-- h = high * 2^64 + low and 2^64 = 551616 (mod 10^6), so
-- h mod 10^6 = (high mod 10^6 * 551616 + low mod 10^6) mod 10^6, all in UBIGINT.
CREATE OR REPLACE TEMP MACRO thumbs_split_of_key(prompt_key, eval_fraction) AS
    CASE WHEN (((prompt_key >> 64)::UBIGINT % 1000000 * 551616
                + (prompt_key & 18446744073709551615::UHUGEINT)::UBIGINT % 1000000)
               % 1000000) / 1000000.0 < eval_fraction
         THEN 'eval' ELSE 'train' END;

-- DuckDB computes the repeated md5_number(...) once.
CREATE OR REPLACE TEMP MACRO thumbs_split_of_json(prompt_json, eval_fraction) AS
    thumbs_split_of_key(md5_number(prompt_json), eval_fraction);

CREATE OR REPLACE TEMP MACRO thumbs_split(prompt, eval_fraction) AS
    thumbs_split_of_key(thumbs_prompt_key(prompt), eval_fraction);
