"""HH pairs staged by DuckDB (warehouse/statements/load/hh_pairs.sql) equal the
Python parser's, row for row, on every row of the three real HH test files: the
same key, prompt turns, replies. Rows the SQL leaves to Python (quirks, rejects)
are decided by the parser, so only the rows it stages need to agree."""
from __future__ import annotations

import json

import duckdb
import pytest

from tasks.ingest.load import row_key
from tasks.sources import hh
from tasks.warehouse.connection import create_macros, read_sql
from tasks.warehouse.raw import archived_rows_sql
from samples import shared_data

def hh_pairs_sql(lines: str) -> str:
    return read_sql(hh.SOURCE.stage_sql).replace("{lines}", lines)


FILES = ("harmless-base.test.jsonl.gz", "helpful-base.test.jsonl.gz", "helpful-rejection-sampled.test.jsonl.gz")


def staged_in_duckdb(con, path) -> dict[int, tuple]:
    rows = con.execute(hh_pairs_sql(archived_rows_sql("b", "hh", "sha", path))).fetchall()
    return {n: (key, [dict(m) for m in prompt], chosen, rejected)
            for n, _, staged, key, prompt, chosen, rejected in rows if staged}


@pytest.mark.parametrize("name", FILES)
def test_duckdb_stages_what_the_python_parser_stages(name):
    path = shared_data("the full HH test files") / "hh-rlhf" / name
    con = duckdb.connect()
    create_macros(con)
    in_sql = staged_in_duckdb(con, path)
    records = [json.loads(line) for line in con.execute(f"SELECT record FROM ({archived_rows_sql('b', 'hh', 's', path)}) "
                                                          "ORDER BY row_number").fetchall() for line in line]
    assert len(in_sql) > 0.97 * len(records)  # the quirks and rejects are the few left to Python
    for row_number, (key, prompt, chosen, rejected) in in_sql.items():
        (python,) = hh.parse(records[row_number - 1])
        assert (key, prompt, chosen, rejected) == (row_key(python.row_key), python.values["prompt"],
                                                   python.values["chosen"], python.values["rejected"]), row_number


def test_quirk_rows_are_left_to_the_python_parser():
    con = duckdb.connect()
    create_macros(con)
    quirks = [  # a second assistant marker in the last human turn's answer; a human marker in the reply;
        {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nAssistant: c", "rejected": "\n\nHuman: a\n\nAssistant: b\n\nAssistant: d"},
        {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: x", "rejected": "\n\nHuman: a\n\nAssistant: c"},
        {"chosen": "\n\nHuman: a\n\nAssistant: same", "rejected": "\n\nHuman: a\n\nAssistant:  same "},  # replies equal
        {"chosen": "\n\nAssistant: a\n\nAssistant: b", "rejected": "\n\nAssistant: a\n\nAssistant: c"},  # no human
        {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c", "chosen ": 1},
    ]
    lines = "SELECT * FROM (VALUES " + ", ".join(f"({n}, '{json.dumps(q)}')" for n, q in enumerate(quirks, 1)) \
        + ") AS lines(row_number, record)"
    staged = {n for n, _, s, *_ in con.execute(hh_pairs_sql(lines)).fetchall() if s}
    assert staged == {5}  # an extra key is fine; each of the others is the parser's to decide
