INSERT OR REPLACE INTO lineage_runs (run_id, flow, started_at, finished_at, status, code_version, config)
VALUES ($run_id, $flow, $started_at, NULL, 'running', $code_version, $config)
