-- The rows a source's SQL did not stage, in file order, for its Python parser.
SELECT row_number, record FROM ({staged}) WHERE NOT staged ORDER BY row_number
