-- The options and SQL of the latest build (an incremental build must match both), and
-- the counts it left in the marts.
SELECT options, models_sha256, counts FROM binarize_builds ORDER BY built_at DESC, build_id LIMIT 1
