-- An archived file as DuckDB reads it: rows, characters, bytes of the longest row.
SELECT count(*), coalesce(sum(length(record)), 0), coalesce(max(strlen(record)), 0) FROM ({lines})
