"""The models' layers (warehouse/models/<layer>/): a model reads only its own layer
or those below it, and binarize runs every model file (no orphan). Below every
layer sit the tables ingest fills, declared by the migrations or by a source
(staging.*, raw.records, quarantine, ingest_runs...)."""
from __future__ import annotations

import re

import pytest

from schemas.config import BinarizeConfig
from tasks.binarize.marts import binarize
from tasks.common.settings import WAREHOUSE_SQL
from tasks.sources import SOURCES
from tasks.warehouse.connection import connect

LAYERS = ("tables", "staging", "intermediate", "marts", "views")  # "tables": declared by migrations or sources
MODEL_FILES = sorted(str(path.relative_to(WAREHOUSE_SQL)) for path in (WAREHOUSE_SQL / "models").rglob("*.sql"))

CREATED = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?(?:TABLE|VIEW)\s+"
                     r"(?:IF\s+NOT\s+EXISTS\s+)?([\w.]+)", re.I)
CTE = re.compile(r"\b(\w+)\s*(?:\([^()]*\))?\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\(", re.I)
# the items of a FROM or JOIN clause, and the keyword or parenthesis that ends it
FROM_ITEMS = re.compile(r"\b(?:FROM|JOIN)\s+(.*?)(?=(\b(?:WHERE|GROUP|JOIN|LEFT|INNER|CROSS|QUALIFY|"
                        r"ORDER|UNION|LIMIT|ON|USING)\b|[()]|;|$))", re.I | re.S)


def without_comments(sql: str) -> str:
    """The SQL without comments, and `IS DISTINCT FROM` out of the way of FROM."""
    return re.sub(r"\bDISTINCT\s+FROM\b", "DISTINCT_FROM", re.sub(r"--[^\n]*", "", sql), flags=re.I)


def relations_read(sql: str) -> set[str]:
    """The tables and views a statement reads, by name: its FROM and JOIN items,
    less its own CTEs, subqueries and table functions."""
    sql = without_comments(sql)
    read = set()
    for items, end in FROM_ITEMS.findall(sql):
        words = [item.split() for item in items.split(",")]
        if end == "(" and len(words[-1]) == 1:  # a table function, range(3)
            words.pop()
        read |= {first.lower() for first, *_ in filter(None, words)}
    return read - {name.lower() for name in CTE.findall(sql)}


def sql_of(relative: str) -> str:
    return (WAREHOUSE_SQL / relative).read_text(encoding="utf-8")


def created_by(relative: str) -> str:
    return CREATED.search(without_comments(sql_of(relative))).group(1).lower()


def layer_of_relations() -> dict[str, str]:
    """Each relation a migration, a source or a model creates -> its layer."""
    layers = {name.lower(): "tables" for migration in (WAREHOUSE_SQL / "migrations").glob("*.sql")
              for name in CREATED.findall(without_comments(migration.read_text(encoding="utf-8")))}
    layers.update({table.name: "tables" for source in SOURCES.values() for table in source.staging})
    layers.update({created_by(model): model.split("/")[1] for model in MODEL_FILES})
    return layers


def test_relations_read_finds_tables_and_leaves_out_ctes_subqueries_and_functions():
    sql = """
        -- FROM commented_out
        CREATE OR REPLACE TEMP TABLE t AS
        WITH RECURSIVE a (x, y) AS (SELECT 1 FROM staging.stg_x), b AS NOT MATERIALIZED (SELECT * FROM a)
        SELECT * FROM b, int_y AS y
        JOIN marts_z z USING (k) LEFT JOIN (SELECT 1 FROM views_w) AS s ON true
        WHERE y.v IS DISTINCT FROM false AND k IN (SELECT k FROM range(3) AS r(k))
        UNION ALL SELECT * FROM int_v"""
    assert relations_read(sql) == {"staging.stg_x", "int_y", "marts_z", "views_w", "int_v"}


def test_every_model_sits_in_a_layer():
    assert MODEL_FILES and {model.split("/")[1] for model in MODEL_FILES} <= set(LAYERS)


@pytest.mark.parametrize("model", MODEL_FILES)
def test_no_model_reads_a_layer_above_its_own(model):
    layers, own = layer_of_relations(), model.split("/")[1]
    # int_pairs and int_votes also read the sources' models through query_table: those
    # sit in their own layer, models/intermediate (tasks/binarize/marts.py: SOURCE_MODELS)
    read = relations_read(sql_of(model))
    undeclared = sorted(read - set(layers))
    assert undeclared == [], f"{model} reads {undeclared}, which no migration, source or model creates"
    above = sorted(name for name in read if LAYERS.index(layers[name]) > LAYERS.index(own))
    assert above == [], f"{model} ({own}) reads {above}, of a layer above its own"


def test_binarize_creates_what_every_model_file_creates(home):
    """No orphan: a model file binarize does not run would leave its table or view missing."""
    with connect(home) as con:
        binarize(con, BinarizeConfig())
        made = {name for (name,) in con.execute(
            "SELECT lower(CASE WHEN schema_name = 'main' THEN name ELSE schema_name || '.' || name END)"
            " FROM (SELECT schema_name, table_name AS name FROM duckdb_tables()"
            "       UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal)").fetchall()}
    orphans = sorted(model for model in MODEL_FILES if created_by(model) not in made)
    assert orphans == [], f"binarize does not run {orphans} (tasks/binarize/marts.py)"
