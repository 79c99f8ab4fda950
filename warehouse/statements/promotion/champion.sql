-- The current champion: the checkpoint of the latest promotion, with its row.
SELECT c.checkpoint_id, c.path, c.snapshot_id, c.metrics, c.algo
FROM promotions AS p
JOIN checkpoints AS c USING (checkpoint_id)
WHERE p.promoted
ORDER BY p.decided_at DESC
LIMIT 1
