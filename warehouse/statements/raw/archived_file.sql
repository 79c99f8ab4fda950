-- raw.records reads this file's rows from its archive (tasks/warehouse/raw.py).
INSERT INTO raw.files (batch_id, source, file_sha256, archive, rows_read)
VALUES ($batch_id, $source, $file_sha256, $archive, $rows_read)
