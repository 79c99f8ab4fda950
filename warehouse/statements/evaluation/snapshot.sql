-- A recorded snapshot by id, for evaluating on a given eval snapshot (eval_snapshot=...).
SELECT path, kind FROM snapshots WHERE snapshot_id = $snapshot_id
