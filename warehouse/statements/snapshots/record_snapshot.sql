INSERT OR IGNORE INTO snapshots (snapshot_id, kind, path, created_at, run_id, options, row_counts, files)
VALUES ($snapshot_id, $kind, $path, $created_at, $run_id, $options, $row_counts, $files)
