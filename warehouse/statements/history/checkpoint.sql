-- One checkpoint by id, or the champion when $checkpoint = 'champion'.
SELECT c.checkpoint_id, c.run_id, c.algo, c.base_model, c.snapshot_id, c.path, c.parent_checkpoint, c.created_at,
       s.path AS snapshot_path, s.files AS snapshot_files, s.row_counts
FROM checkpoints AS c
LEFT JOIN snapshots AS s USING (snapshot_id)
WHERE c.checkpoint_id = $checkpoint
   OR ($checkpoint = 'champion' AND c.checkpoint_id =
       (SELECT checkpoint_id FROM promotions WHERE promoted ORDER BY decided_at DESC LIMIT 1))
