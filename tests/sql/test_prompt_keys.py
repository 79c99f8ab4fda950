"""prompt_key, the stored hash of a row's prompt: both ingest routes store the value
the macro gives, migration 010 gives it to the rows of an older warehouse, and a
later source's table made before the column existed gets it from its declaration."""
from __future__ import annotations

import gzip
import json

import duckdb

from schemas.config import BinarizeConfig
from tasks.binarize.marts import binarize
from tasks.ingest.load import ingest_file
from tasks.sources import SOURCES, bind_source
from tasks.warehouse.connection import connect, create_macros, migrate
from samples import DEMO_HH_HARMLESS

WRONG_KEYS = "SELECT count(*), count(*) FILTER (WHERE prompt_key IS DISTINCT FROM thumbs_prompt_key(prompt)) FROM {}"


def test_both_ingest_routes_store_the_prompts_key(home, tmp_path):
    # The demo file goes through DuckDB; the same rows with a carriage return in one
    # line go through the Python parser.
    rows = [json.loads(line) for line in gzip.decompress(DEMO_HH_HARMLESS.read_bytes()).splitlines()]
    rows[0]["note"] = "a\rb"
    python_route = tmp_path / "with-cr.jsonl"  # the first row's note holds a raw carriage return
    python_route.write_text("\n".join(json.dumps(row, ensure_ascii=False).replace("\\r", "\r") for row in rows))
    with connect(home) as con:
        duckdb_route = ingest_file(con, bind_source("hh"), DEMO_HH_HARMLESS, "b1")
        assert con.execute("SELECT count(*) FROM raw.files").fetchone() == (1,)  # archived: DuckDB staged it
        keyed = con.execute(WRONG_KEYS.format("staging.stg_hh__pairs")).fetchone()
        assert keyed == (duckdb_route.rows_loaded, 0) and keyed[0] > 150
        con.execute("DELETE FROM staging.stg_hh__pairs")
        python = ingest_file(con, bind_source("hh"), python_route, "b2")
        assert con.execute("SELECT count(*) FROM raw.stored_records").fetchone()[0] > 0  # the Python route
        assert con.execute(WRONG_KEYS.format("staging.stg_hh__pairs")).fetchone() == (python.rows_loaded, 0)


def test_migration_010_keys_the_rows_of_an_older_warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    migrate(con, until="009_experiments")
    prompt = [{"role": "user", "content": "Hi?"}]
    con.execute("INSERT INTO staging.stg_hh__pairs VALUES (1, 'b1', 'sha', 1, $p, 'Hello!', 'Go.')", {"p": prompt})
    con.execute("INSERT INTO preference_pairs (pair_id, source, prompt) VALUES ('p', 'hh', $p)", {"p": prompt})
    con.execute("INSERT INTO feedback (feedback_id, source, prompt) VALUES ('f', 'hh', $p)", {"p": prompt})
    assert migrate(con)[0] == "010_prompt_keys"
    create_macros(con)
    for table in ("staging.stg_hh__pairs", "staging.stg_shp__pairs", "preference_pairs", "feedback", "feedback_ties"):
        rows, wrong = con.execute(WRONG_KEYS.format(table)).fetchone()
        assert wrong == 0 and rows == (0 if "shp" in table or "ties" in table else 1), table


def test_a_later_sources_table_made_before_the_column_gets_it_and_its_values(home):
    # A later source's table comes from its declaration on first ingest; one made by an
    # earlier version has no prompt_key until binarize (or an ingest) next declares it.
    # rlcd's plays that part here (migration 012 rebuilds rlcd's own, so it is dropped first).
    (table,) = SOURCES["rlcd"].staging
    prompt = [{"role": "user", "content": "Hi?"}]
    with connect(home) as con:
        con.execute(f"DROP TABLE {table.name}")
        con.execute(table.create_statement().replace(', "prompt_key" UHUGEINT', ""))
        con.execute(f"INSERT INTO {table.name} BY NAME SELECT 1::UHUGEINT AS row_key, 'b1' AS batch_id, 'sha' AS"
                    " file_sha256, 1 AS row_number, $p AS prompt, 'Sure.' AS chosen, 'No.' AS rejected,"
                    " 't' AS template_pair, 'rule' AS labeled_by, 'g' AS generator_sha256, 't' AS templates_sha256",
                    {"p": prompt})
        assert "prompt_key" not in {row[0] for row in con.execute(f"DESCRIBE {table.name}").fetchall()}
        binarize(con, BinarizeConfig())
        assert con.execute(WRONG_KEYS.format(table.name)).fetchone() == (1, 0)
        assert con.execute("SELECT source, prompt_key = thumbs_prompt_key(prompt) FROM preference_pairs"
                           ).fetchall() == [("synthetic:rlcd", True)]
