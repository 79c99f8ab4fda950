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
WHERE record IS NOT NULL AND NOT regexp_full_match(record, '\s*')
