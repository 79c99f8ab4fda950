"""Migration 005: staging's row_key is 128 bits of sha256 over the row's identity.

The loader computes it in Python, the migration in SQL for the rows already
loaded; if the two disagreed, every row loaded before the upgrade would load a
second time."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tasks.ingest.load import ingest_file, row_key
from tasks.sources import bind_source, hh, oasst
from tasks.common.home import Home
from tasks.warehouse.connection import connect, migrate
from .staging import staged_rows

DEMO = Path(__file__).resolve().parents[2] / "demo_data"
HH_FILE = DEMO / "hh-rlhf" / "helpful-base.test.head200.jsonl.gz"
OASST_FILE = DEMO / "oasst" / "en_100_tree.head30.jsonl"


def test_row_key_is_the_first_128_bits_of_sha256():
    # sha256("abc") = ba7816bf8f01cfea414140de5dae2223 b00361a3..., the FIPS 180-2 test vector
    assert row_key("abc") == 0xBA7816BF8F01CFEA414140DE5DAE2223


@pytest.mark.parametrize("identity", ["abc", "", "support-bot:17", "6ab24d72-0181-4594-a9cd-deaf170242fb",
                                      "é😀\u2028\t", "x" * 10_000])
def test_the_loader_and_the_migration_compute_the_same_key(identity):
    con = duckdb.connect()
    migrate(con)
    high, low = row_key(identity) >> 64, row_key(identity) & (2**64 - 1)
    assert con.execute("SELECT thumbs_row_key_of($i), thumbs_row_key($h::UBIGINT, $l::UBIGINT)",
                       {"i": identity, "h": high, "l": low}).fetchone() == (row_key(identity),) * 2


def test_rows_loaded_before_the_migration_are_duplicates_after_it(home):
    con = duckdb.connect(str(Home.of(home).warehouse))
    migrate(con, until="004_cheaper_ids")
    assert con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'stg_hh__pairs'"
                       " AND column_name = 'row_key'").fetchall() == [("VARCHAR",)]
    # staged as the loader of migrations 001-004 did: the identity as text
    staged = {**staged_rows(HH_FILE, hh.parse, "old-hh"), **staged_rows(OASST_FILE, oasst.parse, "old-oasst")}
    for table, rows in staged.items():
        con.register("old_rows", pa.Table.from_pylist(rows))
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM old_rows")  # test set-up: table names are ours
        con.unregister("old_rows")
    con.close()
    counts = {table: len(rows) for table, rows in staged.items()}
    assert counts["staging.stg_hh__pairs"] > 150 and counts["staging.stg_oasst__messages"] > 100

    with connect(home) as con:  # migrates to 005
        assert {table: con.table(table).count("*").fetchall()[0][0] for table in counts} == counts
        hh_result = ingest_file(con, bind_source("hh"), HH_FILE, "new-hh")
        oasst_result = ingest_file(con, bind_source("oasst"), OASST_FILE, "new-oasst")
        assert (hh_result.rows_loaded, hh_result.rows_duplicate) == (0, counts["staging.stg_hh__pairs"])
        assert (oasst_result.rows_loaded, oasst_result.rows_duplicate) == (0, counts["staging.stg_oasst__messages"])
        assert {table: con.table(table).count("*").fetchall()[0][0] for table in counts} == counts
        keys = con.execute("SELECT row_key FROM staging.stg_oasst__messages WHERE message_id = $m",
                           {"m": staged["staging.stg_oasst__messages"][0]["message_id"]}).fetchall()
        assert keys == [(row_key(staged["staging.stg_oasst__messages"][0]["row_key"]),)]
