-- Pairs per source and split of $relation: preference_pairs, or the rows an
-- incremental build deletes (binarize_merged_away_pairs) or inserts (int_preference_pairs).
SELECT source, split, count(*) FROM query_table($relation) GROUP BY ALL ORDER BY ALL
