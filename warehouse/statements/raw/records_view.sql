-- raw.records: the rows kept as table rows, then each archived file's rows
-- (one SELECT per file of raw.files; tasks/warehouse/raw.py puts them here).
CREATE OR REPLACE VIEW raw.records AS
SELECT batch_id, source, file_sha256, row_number, record FROM raw.stored_records
{archived_files}
