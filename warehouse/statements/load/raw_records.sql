-- Keep every row as read, whatever became of it, for a file raw.records cannot
-- read from its archive (tasks/warehouse/raw.py says which).
INSERT INTO raw.stored_records BY NAME SELECT * FROM raw_chunk
