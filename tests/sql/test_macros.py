"""The identity and split macros of migration 004 give exactly the values of 002's,
and warehouse/macros/*.sql, which every connection uses, those of the migrations:
analysts join on these ids across rebuilds and versions."""
from __future__ import annotations

import duckdb

from tasks.common.settings import WAREHOUSE_SQL
from tasks.warehouse.connection import connect, create_macros, migrate

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


# Each macro the migrations store, called on ODD_ROWS.
MACRO_CALLS = {
    "thumbs_pair_id": "thumbs_pair_id(source, prompt, chosen, rejected)",
    "thumbs_pair_id_of_json": "thumbs_pair_id_of_json(source, to_json(prompt), chosen, rejected)",
    "thumbs_feedback_id": "thumbs_feedback_id(source, prompt, chosen, label)",
    "thumbs_feedback_id_of_json": "thumbs_feedback_id_of_json(source, to_json(prompt), chosen, label)",
    "thumbs_split": "thumbs_split(prompt, eval_fraction)",
    "thumbs_split_of_json": "thumbs_split_of_json(to_json(prompt), eval_fraction)",
    "thumbs_row_key": "thumbs_row_key(hash(chosen), hash(rejected))",
    "thumbs_row_key_of": "thumbs_row_key_of(to_json(prompt))",
}
THUMBS_MACROS = "SELECT function_name FROM duckdb_functions() WHERE function_type = 'macro' AND function_name LIKE 'thumbs_%'"


def test_the_macro_files_give_the_values_of_the_migrations():
    stored = duckdb.connect()
    migrate(stored)
    from_files = duckdb.connect()
    create_macros(from_files)
    stored_names = {name for (name,) in stored.execute(THUMBS_MACROS).fetchall()}
    assert stored_names == set(MACRO_CALLS)
    assert stored_names <= {name for (name,) in from_files.execute(THUMBS_MACROS).fetchall()}
    # In the order of the inputs' hash, so rows in the same place have the same inputs.
    # Each value as its 64-bit hash: DuckDB turns 20,000 UHUGEINTs into Python ints or
    # text in seconds.
    values = (f"SELECT {', '.join(f'hash({call})' for call in MACRO_CALLS.values())} FROM ({ODD_ROWS})"
              " ORDER BY hash(source, prompt, chosen, rejected, label, eval_fraction)")
    expected = stored.execute(values).fetchall()
    assert len(expected) == 20004 and from_files.execute(values).fetchall() == expected


def test_every_connection_uses_the_macro_files_read_only_too(home):
    with connect(home):  # a fresh warehouse: the macros, then every migration
        pass
    with connect(home, read_only=True) as con:
        defined_in = con.execute("SELECT DISTINCT database_name FROM duckdb_functions()"
                                 " WHERE function_name = 'thumbs_split'").fetchall()
        assert ("temp",) in defined_in
        assert con.execute("SELECT thumbs_row_key(1, 2)").fetchone() == (2**64 + 2,)


def test_python_strip_strips_what_python_strips():
    # every character str.isspace() accepts, a few it does not, and the regex's edges
    # ($ before a final newline in other dialects, a text of only whitespace, inner runs)
    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace()]
    assert len(spaces) == 29
    texts = ["", " ", "x", "x\n", "\nx", "a \n b", "\u200bx\u200b", "\ufeffx", "x\u3000", "\u00a0\u2028x y\u205f\t",
             "".join(spaces), "".join(spaces) + "mid" + "".join(reversed(spaces)), "x" + "\n" * 3 + "y\n\n"]
    texts += [f"{s}word{s}" for s in spaces] + [f"{chr(c)}word" for c in (0x0b, 0x1f, 0x7f, 0x180e, 0x200b, 0xfeff)]
    con = duckdb.connect()
    create_macros(con)
    got = [row[0] for row in con.execute("SELECT thumbs_python_strip(t) FROM unnest($texts) WITH ORDINALITY AS u(t, i) "
                                         "ORDER BY i", {"texts": texts}).fetchall()]
    assert got == [t.strip() for t in texts]
