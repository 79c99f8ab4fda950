-- Rows of a DPO/IPO/SLiC snapshot: preference pairs of the chosen sources ($sources as in feedback_rows.sql).
SELECT pair_id AS row_id, batch_id, source, prompt, chosen, rejected, margin, split
FROM preference_pairs
WHERE ($sources IS NULL OR EXISTS (
          SELECT 1 FROM unnest(CAST($sources AS VARCHAR[])) AS wanted(name)
          WHERE preference_pairs.source = wanted.name OR starts_with(preference_pairs.source, wanted.name || ':')))
ORDER BY split, pair_id
