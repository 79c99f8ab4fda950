-- Comparison results, when the experiments table exists (the caller checks).
SELECT * FROM experiments LIMIT $limit
