-- OASST's part of the scope. A new message can change pairs it takes no part in: a
-- late reply with a better rank makes a new best and new thumbs for its siblings,
-- a parent that was missing makes its whole subtree reachable, and a reply with
-- the best reply's text unmakes pairs. So every prompt of a touched tree is rebuilt:
-- the trees are found by walking up from each new message to its root, and a
-- tree's prompts all start with its root's text. Prompts are matched on that text,
-- so trees that share a first message (and may share prompts) are rebuilt together.
-- The prompts come from what the marts hold now (the old pairs and thumbs) and
-- from int_oasst__pairs (the new ones): a prompt that lost its pairs is
-- rebuilt too.
INSERT INTO binarize_scope
WITH RECURSIVE
touched (message_id, parent_id, content) AS (
    SELECT message_id, parent_id, content
    FROM staging.stg_oasst__messages
    WHERE batch_id IN (SELECT batch_id FROM binarize_new_batches)
    UNION
    SELECT parent.message_id, parent.parent_id, parent.content
    FROM touched AS child
    JOIN staging.stg_oasst__messages AS parent ON parent.message_id = child.parent_id
),
root_texts AS (
    SELECT DISTINCT content FROM touched WHERE parent_id IS NULL
),
oasst_prompts AS (
    SELECT prompt, prompt_key FROM preference_pairs WHERE source = 'oasst'
    UNION ALL
    SELECT prompt, prompt_key FROM feedback WHERE source = 'oasst'
    UNION ALL
    SELECT prompt, prompt_key FROM feedback_ties WHERE source = 'oasst'
    UNION ALL
    SELECT prompt, prompt_key FROM int_oasst__pairs
)
SELECT DISTINCT 'oasst' AS source, prompt_key
FROM oasst_prompts
WHERE prompt[1].content IN (SELECT content FROM root_texts)
EXCEPT
SELECT source, prompt_key FROM binarize_scope
