-- Rows of a KTO/SFT snapshot: rated completions of the chosen sources.
-- $sources: NULL for all, else names like 'hh' or 'log' (matching every 'log:<name>')
-- or 'log:support-bot'. $one_per_prompt: KTO's "one y per x" setting.
SELECT feedback_id AS row_id, batch_id, source, prompt, completion, label, pair_id, split
FROM feedback
WHERE ($sources IS NULL OR EXISTS (
          SELECT 1 FROM unnest(CAST($sources AS VARCHAR[])) AS wanted(name)
          WHERE feedback.source = wanted.name OR starts_with(feedback.source, wanted.name || ':')))
  AND (NOT $one_per_prompt OR feedback_id IN (SELECT feedback_id FROM feedback_one_per_prompt))
ORDER BY split, feedback_id
