-- Load one chunk of parsed rows; a row_key already present is a duplicate and is skipped.
INSERT OR IGNORE INTO staging.stg_shp__pairs BY NAME SELECT * FROM staged_chunk
