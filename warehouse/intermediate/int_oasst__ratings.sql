-- int_oasst__ratings: OASST ranked sibling replies -> thumbs (one row per rated reply).
--
-- Parameters: $include_synthetic BOOLEAN; $thumbs_rule VARCHAR:
--   'best_worst' (design.md default): the best reply is thumbs up, the worst is
--       thumbs down, middle ranks are not rated (their label is ambiguous);
--   'best_rest': the best reply is thumbs up, every lower-ranked reply is down.
--   Any other value raises an error rather than silently rating nothing.
-- Columns: source, prompt, completion, label, pair_chosen, pair_rejected, batch_id.
--
-- Thumbs are derived from the preference pairs of int_oasst__pairs.sql: the CTEs up
-- to `beaten` are the same (same exclusions, same reasons; read them there) and
-- must stay in step with it. A reply is rated only if it takes part in a pair, so a
-- group whose replies all tie gives no thumbs, and no reply is both up and down.
-- pair_chosen/pair_rejected name the pair the thumb comes from (the mart turns it
-- into pair_id): the up row and, under best_worst, the down row point at the
-- (best, worst) pair; a best_rest down row points at (best, that reply).
-- Ties at the top or bottom (rare; none in the shipped files) rate every tied
-- reply; each row points at one pair, picking the partner with the smallest
-- message_id so the choice is stable across rebuilds.
-- batch_id: the pair's batch (the latest ingest run among the messages it reads).
CREATE OR REPLACE TEMP TABLE int_oasst__ratings AS
WITH RECURSIVE
batch_starts AS (
    SELECT batch_id, min(started_at) AS started_at FROM ingest_runs GROUP BY batch_id
),
usable AS (
    SELECT message.message_id, message.parent_id, message.role, message.content, message.rank,
           -- batch ids are run UUIDs, not ordered: order by when the run started
           -- (a batch missing from ingest_runs sorts first; ties fall back to the id).
           {'started_at': coalesce(batch_starts.started_at, '-infinity'::TIMESTAMP),
            'batch_id': message.batch_id} AS loaded_by
    FROM staging.stg_oasst__messages AS message
    LEFT JOIN batch_starts ON batch_starts.batch_id = message.batch_id
    WHERE NOT message.deleted
      AND message.review_result IS DISTINCT FROM false
      AND (NOT message.synthetic OR $include_synthetic)
),
conversations (message_id, role, turns, path_loaded_by) AS (
    SELECT message_id, role, [{'role': role, 'content': content}], loaded_by
    FROM usable
    WHERE parent_id IS NULL AND role = 'user'
    UNION ALL
    SELECT child.message_id,
           child.role,
           list_append(parent.turns, {'role': child.role, 'content': child.content}),
           greatest(parent.path_loaded_by, child.loaded_by)
    FROM conversations AS parent
    JOIN usable AS child ON child.parent_id = parent.message_id AND child.role <> parent.role
),
ranked_replies AS (
    SELECT reply.message_id, reply.parent_id, reply.content, reply.rank, reply.loaded_by,
           parent.turns AS prompt, parent.path_loaded_by,
           min(reply.rank) OVER (PARTITION BY reply.parent_id) AS best_rank
    FROM usable AS reply
    JOIN conversations AS parent ON parent.message_id = reply.parent_id
    WHERE parent.role = 'user' AND reply.role = 'assistant' AND reply.rank IS NOT NULL
),
best AS (
    SELECT * FROM ranked_replies WHERE rank = best_rank
),
best_texts AS (
    SELECT parent_id, list(content) AS contents FROM best GROUP BY parent_id
),
beaten AS (
    SELECT ranked_replies.*
    FROM ranked_replies
    JOIN best_texts USING (parent_id)
    WHERE rank > best_rank AND NOT list_contains(best_texts.contents, content)
),
rule AS (
    SELECT CASE WHEN $thumbs_rule IN ('best_worst', 'best_rest') THEN $thumbs_rule
                ELSE error('int_oasst__ratings: thumbs_rule must be best_worst or best_rest, got '
                           || coalesce($thumbs_rule, 'NULL'))
           END AS thumbs_rule
),
pairs AS (
    SELECT best.parent_id,
           best.prompt,
           best.message_id AS chosen_id,
           best.content AS chosen,
           beaten.message_id AS rejected_id,
           beaten.content AS rejected,
           beaten.rank = max(beaten.rank) OVER (PARTITION BY best.parent_id) AS against_worst,
           greatest(best.path_loaded_by, best.loaded_by, beaten.loaded_by).batch_id AS batch_id
    FROM best
    JOIN beaten USING (parent_id)
),
thumbs_up AS (
    SELECT prompt, chosen AS completion, true AS label, chosen, rejected, batch_id
    FROM pairs
    WHERE against_worst
    QUALIFY row_number() OVER (PARTITION BY chosen_id ORDER BY rejected_id) = 1
),
thumbs_down AS (
    SELECT prompt, rejected AS completion, false AS label, chosen, rejected, batch_id
    FROM pairs, rule
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
