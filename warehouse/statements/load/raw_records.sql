-- Keep every row as read, whatever became of it.
INSERT INTO raw.records BY NAME SELECT * FROM raw_chunk
