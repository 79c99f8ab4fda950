"""The source registry: every source is found from its own module, its declared
staging tables agree with the migrated ones, and the loader needs nothing else
to stage a new source's rows."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from schemas.nightly import load_sources
from tasks.common.settings import ThumbsError
from tasks.ingest.load import ingest_file
from tasks.sources import SOURCES, bind_source, discover
from tasks.sources.base import Source, Staged, StagingTable, create_staging_tables
from tasks.warehouse.connection import connect, create_macros, migrate

TOY_TABLE = "staging.stg_toy__pairs"


def toy_parse(record):
    return [Staged(TOY_TABLE, record["id"], {"prompt": [{"role": "user", "content": record["q"]}],
                                             "chosen": record["good"], "rejected": record["bad"]})]


TOY = Source(name="toy", parse=toy_parse, required_fields=("id", "q", "good", "bad"),
             staging=[StagingTable(TOY_TABLE, {"prompt": "STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL",
                                               "chosen": "VARCHAR NOT NULL", "rejected": "VARCHAR NOT NULL"})])


def describe(con, table: str) -> list[tuple]:
    return con.execute(f"DESCRIBE {table}").fetchall()


def test_the_shipped_sources_are_found():
    assert {"hh", "shp", "oasst", "log"} <= set(SOURCES)  # and any added since
    assert SOURCES["log"].needs_mapping and not SOURCES["hh"].needs_mapping


def test_declared_staging_tables_agree_with_the_migrated_ones():
    """The migrations made the first sources' tables; their declarations say the
    same, column for column (type, NULL, key), so the two cannot drift apart."""
    migrated = duckdb.connect()
    migrate(migrated)
    declared = duckdb.connect()
    create_macros(declared)  # a derived column's backfill calls one
    declared.execute("CREATE SCHEMA staging")
    migrated_tables = {name for (name,) in migrated.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE schema_name = 'staging'").fetchall()}
    declared_tables = [table for source in SOURCES.values() for table in source.staging]
    assert migrated_tables <= {table.name for table in declared_tables}  # every migrated table is declared
    for table in declared_tables:
        create_staging_tables(declared, [table])
        if table.name in migrated_tables:  # a newer source's table exists only as declared
            assert describe(declared, table.name) == describe(migrated, table.name), table.name


def test_unknown_source_is_one_line_naming_every_registered_source(tmp_path):
    with pytest.raises(ThumbsError) as raised:
        bind_source("hn")
    message = str(raised.value)
    assert "\n" not in message and "unknown source 'hn'" in message
    assert all(name in message for name in SOURCES)

    watched = tmp_path / "sources.yaml"
    watched.write_text("sources:\n  - source: hn\n    paths: [x.jsonl]\n")
    with pytest.raises(ThumbsError) as raised:
        load_sources(watched)
    assert "\n" not in str(raised.value) and all(f"'{name}'" in str(raised.value) for name in SOURCES)


TOY_MODULE = """
from tasks.sources.base import Source, StagingTable
SOURCE = Source(name="toy", parse=lambda record: [], staging=[StagingTable("staging.stg_toy__pairs", {"a": "VARCHAR"})])
"""


def test_discovery_finds_each_declaring_module_and_only_those(tmp_path, monkeypatch):
    package = tmp_path / "more_sources"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("NOT_A_SOURCE = 1\n")
    (package / "toy.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover("more_sources")
    assert list(found) == ["toy"] and found["toy"].staging[0].name == "staging.stg_toy__pairs"

    (package / "misnamed.py").write_text(TOY_MODULE)
    for module in [name for name in sys.modules if name.startswith("more_sources")]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match="misnamed declares source 'toy'"):
        discover("more_sources")


@pytest.mark.parametrize("name, columns", [
    ('staging.stg_x__pairs"; DROP TABLE ingest_runs; --', {"a": "VARCHAR"}),
    ("main.stg_x__pairs", {"a": "VARCHAR"}),
    ("staging.stg_x__pairs", {'a" VARCHAR, "b': "VARCHAR"}),
    ("staging.stg_x__pairs", {"row_key": "VARCHAR"}),
])
def test_staging_names_that_are_not_plain_are_refused(name, columns):
    with pytest.raises(ValueError, match="staging table"):
        StagingTable(name, columns)


def test_a_new_source_stages_its_rows_into_a_table_made_from_its_declaration(home, tmp_path):
    rows = [{"id": "1", "q": "Hi?", "good": "Hello!", "bad": "Go."}, {"id": "1", "q": "Hi?", "good": "Hello!", "bad": "Go."}]
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with connect(home) as con:
        result = ingest_file(con, TOY.bind(), path, "batch-toy")
        staged = con.execute(f"SELECT batch_id, row_number, prompt[1].content, chosen, rejected FROM {TOY_TABLE}").fetchall()
    assert (result.rows_loaded, result.rows_duplicate) == (1, 1)
    assert staged == [("batch-toy", 1, "Hi?", "Hello!", "Go.")]


def test_rows_for_a_table_the_source_does_not_declare_load_nothing(home, tmp_path):
    undeclared = Source(name="toy", parse=toy_parse, staging=[])
    path = tmp_path / "toy.jsonl"
    path.write_text(json.dumps({"id": "1", "q": "Hi?", "good": "Hello!", "bad": "Go."}) + "\n")
    with connect(home) as con:
        with pytest.raises(ThumbsError, match="stg_toy__pairs, which its source does not declare"):
            ingest_file(con, undeclared.bind(), path, "batch-toy")
        assert con.execute("SELECT count(*) FROM ingest_runs").fetchone() == (0,)
