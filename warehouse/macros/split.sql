-- train/eval by a hash of the prompt alone (not the source), so one prompt never
-- sits in both splits, whichever sources it came from. A prompt's split must not
-- change between versions (tests/sql/test_macros.py holds it to migrations 002 and 004).

-- md5_number(prompt_json) % 1000000, without UHUGEINT division (it cost three
-- times the md5): h = high * 2^64 + low and 2^64 = 551616 (mod 10^6), so
-- h mod 10^6 = (high mod 10^6 * 551616 + low mod 10^6) mod 10^6, all in UBIGINT.
-- DuckDB computes the repeated md5_number(...) once.
CREATE OR REPLACE TEMP MACRO thumbs_split_of_json(prompt_json, eval_fraction) AS
    CASE WHEN (((md5_number(prompt_json) >> 64)::UBIGINT % 1000000 * 551616
                + (md5_number(prompt_json) & 18446744073709551615::UHUGEINT)::UBIGINT % 1000000)
               % 1000000) / 1000000.0 < eval_fraction
         THEN 'eval' ELSE 'train' END;

CREATE OR REPLACE TEMP MACRO thumbs_split(prompt, eval_fraction) AS
    thumbs_split_of_json(to_json(prompt), eval_fraction);
