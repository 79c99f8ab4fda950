WITH champion AS (
    SELECT checkpoint_id FROM promotions WHERE promoted ORDER BY decided_at DESC LIMIT 1
)
SELECT c.checkpoint_id, c.algo, c.snapshot_id, strftime(c.created_at, '%Y-%m-%d %H:%M:%S') AS created_at,
       CASE WHEN c.checkpoint_id IN (SELECT checkpoint_id FROM champion) THEN 'yes' ELSE '' END AS champion,
       coalesce(CAST(round(CAST(json_extract(c.metrics, '$.eval.eval_reward_accuracy') AS DOUBLE), 4) AS VARCHAR), '')
FROM checkpoints AS c ORDER BY c.created_at DESC LIMIT $limit
