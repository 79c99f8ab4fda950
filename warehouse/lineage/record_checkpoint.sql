-- One row per final checkpoint (tasks/checkpoints.py: record_checkpoint). A new
-- checkpoint is never promoted; the evaluation gate flips `promoted`.
INSERT INTO checkpoints (checkpoint_id, run_id, algo, base_model, snapshot_id, path, metrics, promoted,
                         parent_checkpoint, created_at)
VALUES ($checkpoint_id, $run_id, $algo, $base_model, $snapshot_id, $path, $metrics, false,
        $parent_checkpoint, $created_at)
