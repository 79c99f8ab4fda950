UPDATE lineage_runs SET finished_at = $finished_at, status = $status WHERE run_id = $run_id
