-- Thumbs per source and label of $relation: feedback, or the rows an incremental
-- build deletes (binarize_merged_away_feedback) or inserts (int_feedback).
SELECT source, label, count(*) FROM query_table($relation) GROUP BY ALL ORDER BY ALL
