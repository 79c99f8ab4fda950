INSERT INTO promotions (checkpoint_id, decided_at, run_id, promoted, previous_champion, reason, evidence)
VALUES ($checkpoint_id, now(), $run_id, $promoted, $previous_champion, $reason, $evidence)
