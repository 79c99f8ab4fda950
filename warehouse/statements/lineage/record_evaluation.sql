-- An evaluation's metrics into its checkpoint's row (flows/evaluate.py), under the
-- "eval" key of `metrics`; the training metrics beside it stay as they were. The
-- previous "eval" entry is removed first, so a re-evaluation replaces it whole
-- rather than merging into it (json_merge_patch merges nested objects key by key).
UPDATE checkpoints
SET metrics = json_merge_patch(json_merge_patch(coalesce(metrics, '{}'::JSON), '{"eval": null}'::JSON),
                               json_object('eval', CAST($evaluation AS JSON)))
WHERE checkpoint_id = $checkpoint_id
RETURNING checkpoint_id
