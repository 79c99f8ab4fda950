INSERT INTO promotions (checkpoint_id, decided_at, run_id, promoted, previous_champion, reason, evidence,
                        verdict, metric, difference, difference_low, difference_high, pairs, tolerance)
VALUES ($checkpoint_id, now(), $run_id, $promoted, $previous_champion, $reason, $evidence,
        $verdict, $metric, $difference, $difference_low, $difference_high, $pairs, $tolerance)
