"""The identity and split macros of migration 004 give exactly the values of 002's:
analysts join on these ids across rebuilds and versions."""
from __future__ import annotations

import duckdb

from tasks.common.settings import WAREHOUSE_SQL

ODD_ROWS = """
SELECT * FROM (VALUES
    ('log:x', [{'role': 'user', 'content': 'a"\\\\b' || chr(10) || chr(9) || 'ü😀' || chr(1)}], NULL, 'r', NULL, 0.5),
    (NULL, NULL, 'c', NULL, true, 0.0),
    ('hh', []::STRUCT(role VARCHAR, content VARCHAR)[], '', '', false, 1.0),
    ('hh', [{'role': NULL, 'content': 'x'}], 'c', 'd', false, 0.1)
) AS t(source, prompt, chosen, rejected, label, eval_fraction)
UNION ALL
SELECT 'shp', [{'role': 'user', 'content': 'prompt ' || i}, {'role': 'assistant', 'content': repeat('é', i % 7)}],
       'chosen ' || i, 'rejected ' || i, i % 2 = 0, (i % 1000) / 1000.0
FROM range(20000) AS r(i)
"""


def test_004_macros_give_the_values_of_002():
    con = duckdb.connect()
    old = (WAREHOUSE_SQL / "migrations" / "002_macros.sql").read_text().replace("MACRO thumbs_", "MACRO old_")
    con.execute(old)
    con.execute((WAREHOUSE_SQL / "migrations" / "004_cheaper_ids.sql").read_text())
    differing = con.execute(f"""
        SELECT count(*),
               count(*) FILTER (WHERE old_pair_id(source, prompt, chosen, rejected)
                                      IS DISTINCT FROM thumbs_pair_id(source, prompt, chosen, rejected)),
               count(*) FILTER (WHERE old_feedback_id(source, prompt, chosen, label)
                                      IS DISTINCT FROM thumbs_feedback_id(source, prompt, chosen, label)),
               count(*) FILTER (WHERE old_split(prompt, eval_fraction)
                                      IS DISTINCT FROM thumbs_split(prompt, eval_fraction)),
               count(*) FILTER (WHERE thumbs_split(prompt, eval_fraction) = 'eval')
        FROM ({ODD_ROWS})""").fetchone()
    assert differing[:4] == (20004, 0, 0, 0)
    assert 9000 < differing[4] < 11000  # fractions spread over [0, 1): about half eval
