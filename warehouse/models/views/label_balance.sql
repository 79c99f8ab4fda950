-- Desirable vs undesirable per source and split: KTO's lambda_D/lambda_U come from this ratio.
CREATE OR REPLACE VIEW label_balance AS
SELECT source, split,
       count(*) FILTER (WHERE label) AS thumbs_up,
       count(*) FILTER (WHERE NOT label) AS thumbs_down,
       round(count(*) FILTER (WHERE label) / count(*), 4) AS up_share
FROM feedback
GROUP BY ALL
ORDER BY ALL
