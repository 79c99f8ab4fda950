-- The finished cells of a comparison, as the table and the plots read them.
SELECT cell, line, algo, beta, checkpoint_id, checkpoint_path, snapshot_id, eval_snapshot_id, run_id,
       config, metrics
FROM experiments
WHERE comparison_id = $comparison_id
ORDER BY line, beta
