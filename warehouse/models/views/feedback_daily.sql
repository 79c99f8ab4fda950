-- Thumbs per source, day and label: the analysts' first chart.
CREATE OR REPLACE VIEW feedback_daily AS
SELECT source, CAST(ingested_at AS DATE) AS day, label, count(*) AS completions
FROM feedback
GROUP BY ALL
ORDER BY ALL
