-- One row per binarize (binarize_builds); the batches it took in are recorded by record_batches.sql.
INSERT INTO binarize_builds
SELECT $build_id, now()::TIMESTAMP, $mode, $reason, $options::JSON, $models_sha256,
       (SELECT count(*) FROM binarize_new_batches), $rebuilt_keys, $counts::JSON
