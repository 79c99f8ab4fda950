SELECT source, label, count(*) FROM feedback GROUP BY ALL ORDER BY ALL
