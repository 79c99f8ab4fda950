-- Runs of $flow still marked running when a new one takes the run lock were killed.
UPDATE lineage_runs SET status = 'interrupted', finished_at = coalesce(finished_at, $now)
WHERE flow = $flow AND status = 'running'
