-- The rows of one archived JSON Lines file, as the reader numbers and keeps them:
-- its numbered lines (archived_lines.sql, or the loader's batch of them while it
-- stages the file) without the blank ones, which hold no row.
-- The loader fills in the literals (tasks/warehouse/raw.py quotes them).
SELECT {batch_id} AS batch_id, {source} AS source, {file_sha256} AS file_sha256, row_number, record
FROM ({numbered_lines})
-- Blank: only what Python's str.isspace calls whitespace (the reader skips those
-- lines), a wider set than the regex class \s.
WHERE record IS NOT NULL AND NOT regexp_full_match(
    record, '[\x{{09}}-\x{{0d}}\x{{1c}}-\x{{20}}\x{{85}}\x{{a0}}\x{{1680}}\x{{2000}}-\x{{200a}}\x{{2028}}\x{{2029}}\x{{202f}}\x{{205f}}\x{{3000}}]*')
