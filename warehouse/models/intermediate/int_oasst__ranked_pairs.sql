-- int_oasst__ranked_pairs: OASST ranked sibling replies -> (best, beaten) pairs, the
-- one place both int_oasst__pairs and int_oasst__ratings read from.
--
-- Parameters: $include_synthetic BOOLEAN.
-- Columns: parent_id, prompt, chosen_id, chosen, rejected_id, rejected, against_worst
-- (the beaten reply has the worst usable rank), batch_id.
--
-- One pair per (best reply, beaten reply) of a prompter message (docs/contract.md,
-- Binarization: "best vs each lower-ranked reply"); rank 0 is best (docs/data-quirks.md, OASST). The prompt is the
-- conversation from the root down to and including the parent prompter message.
--
-- Which messages count ("usable"), and why. An excluded message takes its whole
-- subtree with it, because every descendant's prompt would contain it:
--   * deleted: moderators removed it (40 in the validation file; 3 of them still
--     carry a rank, so the rank filter alone would not catch them);
--   * review_result = false: reviewers rejected it (53 in the validation file).
--     NULL means the review never concluded, not that it failed, so it is kept
--     (in the validation file all 13 NULLs are on deleted messages anyway);
--   * synthetic, unless $include_synthetic: model-written text (22 nodes of the
--     tree export, prompter nodes among them), so the check runs on every node of
--     the path, not only on the root;
--   * not reachable from a root: a parent missing from the warehouse (3 messages of
--     the validation file whose non-English parent was filtered out) leaves no
--     conversation to put in the prompt;
--   * a turn that does not alternate user/assistant: a broken tree, not a dialogue.
-- Which replies are compared: assistant replies with a rank, after the exclusions
-- above. Ranks only order siblings, so the best is the lowest rank still usable
-- (if the rank-0 reply was deleted, the rank-1 reply is best among the rest) and
-- gaps in ranks do not matter. Unranked replies are not compared. Equal ranks, or a
-- lower-ranked reply with the same text as a best reply (one such group in the
-- validation file), express no preference and make no pair.
--
-- batch_id: of every message the pair reads (the prompt path and both replies),
-- the one loaded by the latest ingest run (ingest_runs.started_at): the run after
-- which the pair could exist, e.g. the run that brought a missing parent.
--
CREATE OR REPLACE TEMP TABLE int_oasst__ranked_pairs AS
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
)
SELECT best.parent_id,
       best.prompt::STRUCT(role VARCHAR, content VARCHAR)[] AS prompt,
       best.message_id AS chosen_id,
       best.content AS chosen,
       beaten.message_id AS rejected_id,
       beaten.content AS rejected,
       beaten.rank = max(beaten.rank) OVER (PARTITION BY best.parent_id) AS against_worst,
       greatest(best.path_loaded_by, best.loaded_by, beaten.loaded_by).batch_id AS batch_id
FROM best
JOIN beaten USING (parent_id)
