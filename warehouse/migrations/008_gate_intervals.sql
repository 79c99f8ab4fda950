-- The gate decides on a paired bootstrap of candidate − champion over the same eval
-- pairs (tasks/evaluate/promotion.py): each decision keeps its verdict, the metric
-- compared, the difference with its 95% interval, the pairs it was measured on and
-- the tolerance. Decisions recorded before this migration have NULLs here; their
-- reason and evidence still say what was compared.
ALTER TABLE promotions ADD COLUMN verdict VARCHAR;
ALTER TABLE promotions ADD COLUMN metric VARCHAR;
ALTER TABLE promotions ADD COLUMN difference DOUBLE;
ALTER TABLE promotions ADD COLUMN difference_low DOUBLE;
ALTER TABLE promotions ADD COLUMN difference_high DOUBLE;
ALTER TABLE promotions ADD COLUMN pairs INTEGER;
ALTER TABLE promotions ADD COLUMN tolerance DOUBLE;
