-- The raw layer without a second copy of every row: each file read is archived
-- once under THUMBS_HOME, named by its sha256, and raw.records becomes a view
-- that reads the archived files (tasks/warehouse/raw.py rebuilds it when a file
-- is added). Rows the archive cannot give back exactly as read (a source whose
-- raw rows are pseudonymized, CSV/Parquet/JSON-array files, lines DuckDB reads
-- differently) are still stored as rows, in raw.stored_records: the old table,
-- renamed, so the rows loaded before this migration stay where they were.
ALTER TABLE raw.records RENAME TO stored_records;

-- One row per archived file whose rows raw.records reads from the archive.
CREATE TABLE IF NOT EXISTS raw.files (
    batch_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    archive     VARCHAR NOT NULL,   -- the archived file's path
    rows_read   BIGINT NOT NULL,    -- its rows, as the ingest read them
    PRIMARY KEY (source, file_sha256)
);

CREATE VIEW raw.records AS
SELECT batch_id, source, file_sha256, row_number, record FROM raw.stored_records;
