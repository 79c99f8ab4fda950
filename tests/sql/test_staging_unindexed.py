"""Migration 012: staging tables keep row_key unique without a primary-key index.

The loader skips a present key with an anti-join, so what has to hold is that a
migrated warehouse keeps every row in its order, has no index left to maintain, and
still finds the rows loaded before the upgrade as duplicates."""
from __future__ import annotations

import gzip
from pathlib import Path

import duckdb

from tasks.common.home import Home
from tasks.ingest.load import ingest_file
from tasks.sources import SOURCES, bind_source
from tasks.warehouse.connection import connect, create_macros, migrate

DEMO = Path(__file__).resolve().parents[2] / "demo_data"
HH_FILE = DEMO / "hh-rlhf" / "helpful-base.test.head200.jsonl.gz"
STAGED_IN_ORDER = "SELECT row_key, batch_id, row_number, prompt_key FROM staging.stg_hh__pairs ORDER BY rowid"
STAGING_KEYS = ("SELECT table_name FROM duckdb_constraints() WHERE schema_name = 'staging'"
                " AND constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY table_name")


def test_migration_012_keeps_staged_rows_in_order_drops_the_index_and_still_finds_duplicates(home, tmp_path):
    con = duckdb.connect(str(Home.of(home).warehouse))
    create_macros(con)
    migrate(con, until="011_build_counts")
    before = ingest_file(con, bind_source("hh"), HH_FILE, "old-hh")
    # rlcd's table as an older version made it from its declaration: indexed, no prompt_key
    (rlcd,) = SOURCES["rlcd"].staging
    con.execute(rlcd.create_statement().replace("UHUGEINT NOT NULL", "UHUGEINT PRIMARY KEY")
                .replace(', "prompt_key" UHUGEINT', ""))
    con.execute(f"INSERT INTO {rlcd.name} BY NAME SELECT 7::UHUGEINT AS row_key, 'old-rlcd' AS batch_id,"
                " 'sha' AS file_sha256, 1 AS row_number, [{'role': 'user', 'content': 'Hi?'}] AS prompt,"
                " 'Sure.' AS chosen, 'No.' AS rejected, 't' AS template_pair, 'rule' AS labeled_by,"
                " 'g' AS generator_sha256, 't' AS templates_sha256")
    staged = con.execute(STAGED_IN_ORDER).fetchall()
    assert con.execute(STAGING_KEYS).fetchall() == [("stg_hh__pairs",), ("stg_log__pairs",), ("stg_log__ratings",),
                                                    ("stg_oasst__messages",), ("stg_rlcd__pairs",),
                                                    ("stg_shp__pairs",)]
    con.close()
    assert before.rows_loaded > 150

    with connect(home) as con:  # migrates to 012
        assert con.execute(STAGING_KEYS).fetchall() == []
        assert con.execute(STAGED_IN_ORDER).fetchall() == staged
        assert con.execute(f"SELECT row_key, prompt_key = thumbs_prompt_key(prompt) FROM {rlcd.name}"
                           ).fetchall() == [(7, True)]
        same_rows = tmp_path / "same-rows.jsonl"  # other bytes: a file already ingested is skipped whole
        same_rows.write_bytes(gzip.decompress(HH_FILE.read_bytes()) + b"\n")
        again = ingest_file(con, bind_source("hh"), same_rows, "new-hh")
        assert (again.rows_loaded, again.rows_duplicate) == (0, before.rows_loaded)
        assert con.execute("SELECT count(*), count(DISTINCT row_key) FROM staging.stg_hh__pairs"
                           ).fetchone() == (before.rows_loaded,) * 2

