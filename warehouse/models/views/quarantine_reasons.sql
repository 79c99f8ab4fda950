-- Why rows were not loaded, with one example location for each reason.
CREATE OR REPLACE VIEW quarantine_reasons AS
SELECT source, reason, count(*) AS rows,
       min(file) AS example_file,
       arg_min(row_number, file) AS example_row
FROM quarantine
GROUP BY ALL
ORDER BY rows DESC, source, reason
