-- HH-RLHF pairs parsed in DuckDB: the same rows, keys and reasons as the Python
-- parser (tasks/sources/hh.py; docs/data-quirks.md#hh-rlhf), for the rows whose
-- split is plain. A row is `staged` when it is a JSON object with text chosen and
-- rejected that share everything up to chosen's last "\n\nAssistant:", the turns
-- before it alternate from a human turn, no second "\n\nAssistant:" sits in the
-- last human turn's answer, chosen's reply holds no "\n\nHuman:", and the trimmed
-- replies are non-empty and differ. Every other row (a quirk, a reject) goes to
-- the Python parser, which decides it and names the reason. The loader puts the
-- file's archived rows (warehouse/statements/raw/archived_rows.sql) in the first CTE.
-- trim() is given Python's whitespace (str.strip), as the parser strips.
WITH lines AS ({lines}),
fields AS (
    SELECT row_number, record,
           json_extract_string(record, '$.chosen') AS chosen_text,
           json_extract_string(record, '$.rejected') AS rejected_text
    FROM lines
    WHERE json_valid(record) AND json_type(record) = 'OBJECT'
      AND json_type(record, '$.chosen') = 'VARCHAR' AND json_type(record, '$.rejected') = 'VARCHAR'
      AND len(json_keys(record)) = len(list_distinct(json_keys(record)))  -- Python keeps a repeated key's last value
      AND NOT regexp_matches(record, '\\u[dD][89a-fA-F]')  -- a surrogate escape: Python's text is not UTF-8
),
split AS (
    SELECT *, left(chosen_text, length(chosen_text) - length(chosen_tail) - 12) AS dialogue  -- 12: the marker
    FROM (SELECT *, string_split(chosen_text, chr(10) || chr(10) || 'Assistant:')[-1] AS chosen_tail FROM fields)
    WHERE chosen_text <> rejected_text AND length(chosen_tail) < length(chosen_text)
),
turns AS (
    SELECT *,
           substr(rejected_text, length(dialogue) + 13) AS rejected_tail,
           regexp_extract_all(dialogue, '\n\n(Human|Assistant):', 1) AS speakers,
           regexp_split_to_array(dialogue, '\n\n(?:Human|Assistant):') AS texts
    FROM split
    WHERE starts_with(rejected_text, dialogue || chr(10) || chr(10) || 'Assistant:')
      AND NOT contains(chosen_tail, chr(10) || chr(10) || 'Human:')
      AND NOT contains(string_split(dialogue, chr(10) || chr(10) || 'Human:')[-1], chr(10) || chr(10) || 'Assistant:')
),
parsed AS (
    SELECT row_number,
           list_transform(texts[2:], lambda text, i: {'role': CASE WHEN i % 2 = 1 THEN 'user' ELSE 'assistant' END,
                                                      'content': thumbs_python_strip(text)}) AS prompt,
           thumbs_python_strip(chosen_tail) AS chosen, thumbs_python_strip(rejected_tail) AS rejected,
           chosen_text, rejected_text
    FROM turns
    WHERE thumbs_python_strip(texts[1]) = ''
      AND regexp_full_match(array_to_string(speakers, ','), 'Human(,Assistant,Human)*')
),
staged AS (
    SELECT row_number, prompt, chosen, rejected,
           thumbs_row_key_of(thumbs_content_key('hh', chosen_text, rejected_text)) AS row_key
    FROM parsed
    WHERE chosen <> '' AND rejected <> '' AND chosen <> rejected
)
SELECT lines.row_number, lines.record, staged.row_number IS NOT NULL AS staged,
       staged.row_key, staged.prompt, staged.chosen, staged.rejected
FROM lines LEFT JOIN staged USING (row_number)
