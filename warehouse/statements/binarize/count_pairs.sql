SELECT source, split, count(*) FROM preference_pairs GROUP BY ALL ORDER BY ALL
