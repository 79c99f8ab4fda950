-- One row per final checkpoint (tasks/train/checkpoints.py: record_checkpoint). A new
-- checkpoint is never promoted; the evaluation gate flips `promoted`. A second
-- recording of the same checkpoint (a run killed after its row, resumed) keeps the first.
INSERT OR IGNORE INTO checkpoints (checkpoint_id, run_id, algo, base_model, snapshot_id, path, metrics, promoted,
                         parent_checkpoint, created_at)
VALUES ($checkpoint_id, $run_id, $algo, $base_model, $snapshot_id, $path, $metrics, false,
        $parent_checkpoint, $created_at)
