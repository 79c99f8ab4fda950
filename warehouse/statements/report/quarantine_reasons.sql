-- Why rows were not loaded, most rows first.
SELECT * FROM quarantine_reasons ORDER BY rows DESC, source, reason
