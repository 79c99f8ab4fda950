-- The options and SQL of the latest build: an incremental build must match both.
SELECT options, models_sha256 FROM binarize_builds ORDER BY built_at DESC, build_id LIMIT 1
