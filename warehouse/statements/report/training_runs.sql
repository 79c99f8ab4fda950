-- Training runs, newest first, with the checkpoint each one wrote (none if it failed or runs).
SELECT r.run_id, r.status, r.started_at, r.finished_at, c.checkpoint_id, c.algo,
       r.config ->> 'algo' AS requested_algo
FROM lineage_runs AS r
LEFT JOIN checkpoints AS c USING (run_id)
WHERE r.flow = 'train'
ORDER BY r.started_at DESC
LIMIT $limit
