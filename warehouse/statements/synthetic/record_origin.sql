-- What decided a generated file's rows (generator weights, templates file, prompt set,
-- sampling settings), merged into the options of the ingest runs that loaded it, so
-- `thumbs lineage` follows a checkpoint back to them.
UPDATE ingest_runs
SET options = json_merge_patch(coalesce(options, '{}'::JSON), CAST($origin AS JSON))
WHERE source = 'rlcd' AND file_sha256 = $file_sha256
