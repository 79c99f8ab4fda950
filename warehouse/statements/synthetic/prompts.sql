-- Prompts already in the warehouse, for `thumbs synthesize rlcd --from-warehouse`:
-- each distinct prompt of feedback with its number of thumbs (rated completions),
-- fewest first. {where} is the user's --where filter, trusted SQL over `prompt`,
-- `thumbs` and `sources` (e.g. thumbs < 3); $limit is bound.
SELECT prompt
FROM (
    SELECT prompt, count(*) AS thumbs, list_distinct(list(source)) AS sources
    FROM feedback
    GROUP BY prompt
)
WHERE {where}
ORDER BY thumbs, md5(CAST(prompt AS VARCHAR))
LIMIT $limit
