SELECT run_id, flow, strftime(started_at, '%Y-%m-%d %H:%M:%S') AS started_at, status
FROM lineage_runs ORDER BY started_at DESC LIMIT $limit
