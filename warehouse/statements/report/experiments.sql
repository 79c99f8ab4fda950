-- Finished cells of `thumbs compare` grids, newest first; metrics is the cell's
-- evaluation JSON (m, m_low, m_high, m_n), laid out by the page.
SELECT comparison_id, cell, line, algo, beta, checkpoint_id, finished_at, metrics
FROM experiments
ORDER BY finished_at DESC, comparison_id, cell
LIMIT $limit
