-- Gate decisions, newest first; every column but the evidence JSON (new columns show up by themselves).
SELECT * EXCLUDE (evidence) FROM promotions ORDER BY decided_at DESC LIMIT $limit
