-- The ingest batches whose staging rows the marts do not include yet: every batch
-- in a staging table ($staging_tables) that binarize_batches does not list.
CREATE OR REPLACE TEMP TABLE binarize_new_batches AS
SELECT DISTINCT s.batch_id
FROM query_table($staging_tables, true) AS s
ANTI JOIN binarize_batches AS b USING (batch_id)
