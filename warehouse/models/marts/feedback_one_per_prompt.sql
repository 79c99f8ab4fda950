-- KTO's "one y per x" setting (Ethayarajh et al. 2024, sec. 4.3): at most one
-- rated completion per prompt, chosen by a hash so the choice is stable across
-- rebuilds and independent of load order.
CREATE OR REPLACE VIEW feedback_one_per_prompt AS
SELECT * FROM feedback
QUALIFY row_number() OVER (PARTITION BY to_json(prompt) ORDER BY md5(feedback_id)) = 1
