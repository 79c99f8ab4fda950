-- Thumbs up and down per source and split.
SELECT * FROM label_balance ORDER BY source, split
