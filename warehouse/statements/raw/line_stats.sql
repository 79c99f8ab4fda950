-- An archived file as DuckDB reads it: its rows and their characters.
SELECT count(*), coalesce(sum(length(record)), 0)
FROM ({lines})
