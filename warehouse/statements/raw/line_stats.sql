-- An archived file as DuckDB reads it: rows, characters, bytes of the longest row,
-- and the number of its last row (blank lines count toward row numbers).
SELECT count(*), coalesce(sum(length(record)), 0), coalesce(max(strlen(record)), 0), coalesce(max(row_number), 0)
FROM ({lines})
