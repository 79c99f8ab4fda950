-- Checkpoints, newest first: what trained them, the evaluate flow's metrics, whether champion now.
WITH champion AS (
    SELECT checkpoint_id FROM promotions WHERE promoted ORDER BY decided_at DESC LIMIT 1
)
SELECT c.checkpoint_id, c.algo, c.base_model, c.snapshot_id, c.created_at, c.path,
       c.checkpoint_id IN (SELECT checkpoint_id FROM champion) AS champion,
       CAST(c.metrics -> 'eval' AS VARCHAR) AS evaluation
FROM checkpoints AS c
ORDER BY c.created_at DESC
LIMIT $limit
