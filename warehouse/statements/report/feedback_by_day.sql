-- Thumbs per source and day, and the share that is up: volume and label balance over time.
SELECT source, day, sum(completions) AS completions,
       sum(completions) FILTER (WHERE label) / sum(completions) AS up_share
FROM feedback_daily
GROUP BY ALL
ORDER BY source, day
