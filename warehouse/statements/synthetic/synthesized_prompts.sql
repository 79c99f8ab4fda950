-- The prompts of every generation record ingested so far (kept or quarantined), so a
-- nightly run synthesizes new prompts only.
SELECT DISTINCT CAST(json_extract(record, '$.prompt') AS VARCHAR)
FROM raw.records
WHERE source = 'rlcd'
