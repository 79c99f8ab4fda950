-- A finished cell of a comparison (tasks/compare/tasks.py). A cell recorded twice (killed
-- after its row, resumed) keeps the first row.
INSERT OR IGNORE INTO experiments (comparison_id, cell, line, algo, beta, checkpoint_id, checkpoint_path, snapshot_id,
                                   eval_snapshot_id, run_id, config, metrics, finished_at)
VALUES ($comparison_id, $cell, $line, $algo, $beta, $checkpoint_id, $checkpoint_path, $snapshot_id,
        $eval_snapshot_id, $run_id, $config, $metrics, $finished_at)
