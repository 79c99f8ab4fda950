-- The rows of one archived JSON Lines file, as the reader numbers and keeps them:
-- every line counts toward row_number, blank lines hold no row. One field per
-- line: the separator is a control byte JSON text never holds unescaped, and no
-- quoting. parallel=false keeps the lines in file order for row_number().
-- The loader fills in the literals (tasks/warehouse/raw.py quotes them).
SELECT {batch_id} AS batch_id, {source} AS source, {file_sha256} AS file_sha256, row_number, record
FROM (
    SELECT row_number() OVER () AS row_number, record
    FROM read_csv({archive}, columns = {{'record': 'VARCHAR'}}, header = false, delim = chr(30), quote = '',
                  escape = '', auto_detect = false, strict_mode = false, parallel = false)
)
-- Blank: only what Python's str.isspace calls whitespace (the reader skips those
-- lines), a wider set than the regex class \s.
WHERE record IS NOT NULL AND NOT regexp_full_match(
    record, '[\x{{09}}-\x{{0d}}\x{{1c}}-\x{{20}}\x{{85}}\x{{a0}}\x{{1680}}\x{{2000}}-\x{{200a}}\x{{2028}}\x{{2029}}\x{{202f}}\x{{205f}}\x{{3000}}]*')
