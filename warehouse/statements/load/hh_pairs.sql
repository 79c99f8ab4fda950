-- HH-RLHF pairs parsed in DuckDB: the same rows, keys and values as the Python
-- parser (tasks/sources/hh.py; docs/data-quirks.md#hh-rlhf), for the rows whose
-- split is plain. A row is `staged` when it is a JSON object with text chosen and
-- rejected that share everything up to chosen's last "\n\nAssistant:", the turns
-- before it alternate from a human turn, no second "\n\nAssistant:" sits in the
-- last human turn's answer, chosen's reply holds no "\n\nHuman:", and the trimmed
-- replies are non-empty and differ. Every other row (a quirk, a reject) goes to
-- the Python parser, which decides it and names the reason. The loader puts the
-- file's archived rows (warehouse/statements/raw/archived_rows.sql) in the first
-- CTE. One pass, no join: each step keeps every line and carries what it found.
-- Only the staged rows are used (the loader gives the parser the lines of the file
-- that are not in staging after the insert, duplicates included).
WITH lines AS ({lines}),
fields AS (  -- each JSON function parses the text again: as few as will do
    SELECT row_number, record,
           CASE WHEN json_valid(record) THEN json_type(record, ['$', '$.chosen', '$.rejected']) END AS kinds,
           CASE WHEN kinds = ['OBJECT', 'VARCHAR', 'VARCHAR'] THEN json_keys(record) END AS keys
    FROM lines
),
texts AS (
    SELECT row_number, record,
           coalesce(len(keys) = len(list_distinct(keys))  -- Python keeps a repeated key's last value
                    AND NOT regexp_matches(record, '\\u[dD][89a-fA-F]'), false)  -- a surrogate escape: not UTF-8 in Python
               AS plain_json,
           CASE WHEN plain_json THEN json_extract_string(record, ['$.chosen', '$.rejected']) END AS both_texts,
           both_texts[1] AS chosen_text, both_texts[2] AS rejected_text
    FROM fields
),
split AS (
    SELECT *, left(chosen_text, length(chosen_text) - length(chosen_tail) - 12) AS dialogue  -- 12: the marker
    FROM (SELECT *, string_split(chosen_text, chr(10) || chr(10) || 'Assistant:')[-1] AS chosen_tail FROM texts)
),
plain AS (
    SELECT *,
           coalesce(plain_json AND chosen_text <> rejected_text AND length(chosen_tail) < length(chosen_text)
                    AND starts_with(rejected_text, dialogue || chr(10) || chr(10) || 'Assistant:')
                    AND NOT contains(chosen_tail, chr(10) || chr(10) || 'Human:')
                    AND NOT contains(string_split(dialogue, chr(10) || chr(10) || 'Human:')[-1],
                                     chr(10) || chr(10) || 'Assistant:'), false) AS plain_split
    FROM split
),
turns AS (
    SELECT row_number, record, plain_split, chosen_text, rejected_text,
           CASE WHEN plain_split THEN regexp_extract_all(dialogue, '\n\n(Human|Assistant):', 1) END AS speakers,
           CASE WHEN plain_split THEN regexp_split_to_array(dialogue, '\n\n(?:Human|Assistant):') END AS pieces,
           CASE WHEN plain_split THEN thumbs_python_strip(chosen_tail) END AS chosen,
           CASE WHEN plain_split THEN thumbs_python_strip(substr(rejected_text, length(dialogue) + 13)) END AS rejected
    FROM plain
),
decided AS (
    SELECT *,
           coalesce(plain_split AND thumbs_python_strip(pieces[1]) = ''
                    AND regexp_full_match(array_to_string(speakers, ','), 'Human(,Assistant,Human)*')
                    AND chosen <> '' AND rejected <> '' AND chosen <> rejected, false) AS staged
    FROM turns
)
SELECT row_number, record, staged,
       CASE WHEN staged THEN thumbs_row_key_of(thumbs_content_key('hh', chosen_text, rejected_text)) END AS row_key,
       CASE WHEN staged THEN list_transform(pieces[2:], lambda text, i: {
           'role': CASE WHEN i % 2 = 1 THEN 'user' ELSE 'assistant' END, 'content': thumbs_python_strip(text)}) END
           AS prompt,
       chosen, rejected
FROM decided
