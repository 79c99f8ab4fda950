-- int_oasst__ratings: OASST ranked sibling replies -> thumbs (one row per rated reply).
--
-- Parameter: $thumbs_rule VARCHAR:
--   'best_worst' (the default, docs/contract.md): the best reply is thumbs up, the worst is
--       thumbs down, middle ranks are not rated (their label is ambiguous);
--   'best_rest': the best reply is thumbs up, every lower-ranked reply is down.
--   Any other value raises an error rather than silently rating nothing.
-- Columns: source, prompt, completion, label, pair_chosen, pair_rejected, batch_id.
--
-- Thumbs are derived from int_oasst__ranked_pairs (the exclusions and their reasons
-- are there), the same pairs int_oasst__pairs gives. A reply is rated only if it takes part in a pair, so a
-- group whose replies all tie gives no thumbs, and no reply is both up and down.
-- pair_chosen/pair_rejected name the pair the thumb comes from (the mart turns it
-- into pair_id): the up row and, under best_worst, the down row point at the
-- (best, worst) pair; a best_rest down row points at (best, that reply).
-- Ties at the top or bottom (rare; none in the shipped files) rate every tied
-- reply; each row points at one pair, picking the partner with the smallest
-- message_id so the choice is stable across rebuilds.
-- batch_id: the pair's batch (the latest ingest run among the messages it reads).
CREATE OR REPLACE TEMP TABLE int_oasst__ratings AS
WITH
rule AS (
    SELECT CASE WHEN $thumbs_rule IN ('best_worst', 'best_rest') THEN $thumbs_rule
                ELSE error('int_oasst__ratings: thumbs_rule must be best_worst or best_rest, got '
                           || coalesce($thumbs_rule, 'NULL'))
           END AS thumbs_rule
),
thumbs_up AS (
    SELECT prompt, chosen AS completion, true AS label, chosen, rejected, batch_id
    FROM int_oasst__ranked_pairs
    WHERE against_worst
    QUALIFY row_number() OVER (PARTITION BY chosen_id ORDER BY rejected_id) = 1
),
thumbs_down AS (
    SELECT prompt, rejected AS completion, false AS label, chosen, rejected, batch_id
    FROM int_oasst__ranked_pairs, rule
    WHERE against_worst OR rule.thumbs_rule = 'best_rest'
    QUALIFY row_number() OVER (PARTITION BY rejected_id ORDER BY chosen_id) = 1
)
SELECT 'oasst' AS source,
       prompt::STRUCT(role VARCHAR, content VARCHAR)[] AS prompt,
       completion,
       label,
       chosen AS pair_chosen,
       rejected AS pair_rejected,
       batch_id
FROM (SELECT * FROM thumbs_up UNION ALL SELECT * FROM thumbs_down), rule
