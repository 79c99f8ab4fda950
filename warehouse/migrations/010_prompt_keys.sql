-- prompt_key: md5_number of the prompt's JSON (the macro thumbs_prompt_key; written
-- out here, as a migration must not change when the macros do), stored with every
-- staging row that has a prompt and with every mart row. An incremental build then
-- finds the rows of the prompts it rebuilds by this key, without reading and hashing
-- every prompt of staging and of the marts (what made its time grow with history),
-- and a build takes each row's split from it. Existing rows get their key here; the
-- marts are rebuilt in full by the next binarize anyway (their SQL changed), and
-- have the key until then.
-- A staging table declared by a source added later gets the column from its
-- declaration (tasks/sources/base.py, StagingTable), and the loader fills it.

ALTER TABLE staging.stg_hh__pairs ADD COLUMN prompt_key UHUGEINT;
UPDATE staging.stg_hh__pairs SET prompt_key = md5_number(to_json(prompt));

ALTER TABLE staging.stg_shp__pairs ADD COLUMN prompt_key UHUGEINT;
UPDATE staging.stg_shp__pairs SET prompt_key = md5_number(to_json(prompt));

ALTER TABLE staging.stg_log__ratings ADD COLUMN prompt_key UHUGEINT;
UPDATE staging.stg_log__ratings SET prompt_key = md5_number(to_json(prompt));

ALTER TABLE staging.stg_log__pairs ADD COLUMN prompt_key UHUGEINT;
UPDATE staging.stg_log__pairs SET prompt_key = md5_number(to_json(prompt));

ALTER TABLE preference_pairs ADD COLUMN prompt_key UHUGEINT;
UPDATE preference_pairs SET prompt_key = md5_number(to_json(prompt));

ALTER TABLE feedback ADD COLUMN prompt_key UHUGEINT;
UPDATE feedback SET prompt_key = md5_number(to_json(prompt));

ALTER TABLE feedback_ties ADD COLUMN prompt_key UHUGEINT;
UPDATE feedback_ties SET prompt_key = md5_number(to_json(prompt));
