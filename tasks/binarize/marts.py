"""Rebuild the marts (`preference_pairs`, `feedback`) and the analyst views from staging."""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from schemas.config import BinarizeConfig
from tasks.common.settings import WAREHOUSE_SQL
from tasks.sources import SOURCES
from tasks.warehouse.connection import run_sql, transaction

# The DAG of SQL models, in dependency order, with the parameters each binds.
# First what the sources' own models read (OASST's ranked pairs), then each
# source's models (SOURCE_MODELS), then the models that combine every source.
SOURCE_INPUTS: list[tuple[str, tuple[str, ...]]] = [
    ("models/intermediate/int_oasst__ranked_pairs.sql", ("include_synthetic",)),
    ("models/intermediate/int_oasst__ratings.sql", ("thumbs_rule",)),
]
MODELS: list[tuple[str, tuple[str, ...]]] = [
    ("models/intermediate/int_pairs.sql", ("pair_models", "eval_fraction")),
    ("models/intermediate/int_pair_repeats.sql", ()),
    ("models/marts/preference_pairs.sql", ()),
    ("models/intermediate/int_votes.sql", ("vote_models",)),
    ("models/intermediate/int_vote_counts.sql", ()),
    ("models/intermediate/int_multi_vote_tallies.sql", ()),
    ("models/marts/feedback.sql", ("eval_fraction",)),
    ("models/marts/feedback_one_per_prompt.sql", ()),
]
# Each source's models, named after it: int_<source>__pairs (its preference pairs)
# and int_<source>__votes (thumbs it gives replies directly), each optional.
SOURCE_MODELS = "models/intermediate"


@dataclass
class BinarizeResult:
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, split) -> pairs
    feedback: dict[tuple[str, bool], int] = field(default_factory=dict)  # (source, label) -> rows
    tied_completions: int = 0  # rated up and down equally often: no label, left out


def model_params(config: BinarizeConfig) -> dict[str, object]:
    return {
        "include_synthetic": config.oasst_include_synthetic,
        "thumbs_rule": config.oasst_thumbs,
        "eval_fraction": config.eval_fraction,
        "pair_models": source_models("pairs"),
        "vote_models": source_models("votes"),
    }


def source_models(kind: str) -> list[str]:
    """The registered sources' int_<source>__<kind> models (kind: pairs or votes) that exist."""
    names = (f"int_{source}__{kind}" for source in SOURCES)
    return [name for name in names if (WAREHOUSE_SQL / SOURCE_MODELS / f"{name}.sql").is_file()]


def create_source_models(con: duckdb.DuckDBPyConnection, config: BinarizeConfig) -> None:
    """Each source's models, with binarize's options in the DuckDB variable
    binarize_options (a struct of BinarizeConfig's fields): the models are views,
    and a view cannot hold a query parameter."""
    con.execute("SET VARIABLE binarize_options = $options", {"options": config.model_dump()})
    for source in SOURCES.values():
        for table in source.staging:  # a source never ingested still has (empty) tables to read
            con.execute(table.create_statement())
    for name in source_models("pairs") + source_models("votes"):
        run_sql(con, f"{SOURCE_MODELS}/{name}.sql")


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """The analyst views (warehouse/models/views/*.sql); they take no parameters."""
    for view in sorted((WAREHOUSE_SQL / "models" / "views").glob("*.sql")):
        run_sql(con, f"models/views/{view.name}")


def binarize(con: duckdb.DuckDBPyConnection, config: BinarizeConfig) -> BinarizeResult:
    """Replace the marts in one transaction: readers never see a half-built table."""
    params = model_params(config)
    with transaction(con):
        for sql_file, names in SOURCE_INPUTS:
            run_sql(con, sql_file, {name: params[name] for name in names})
        create_source_models(con, config)
        for sql_file, names in MODELS:
            run_sql(con, sql_file, {name: params[name] for name in names})
        create_views(con)
        return BinarizeResult(
            pairs={(s, sp): n for s, sp, n in run_sql(con, "statements/binarize/count_pairs.sql").fetchall()},
            feedback={(s, lb): n for s, lb, n in run_sql(con, "statements/binarize/count_feedback.sql").fetchall()},
            tied_completions=run_sql(con, "statements/binarize/count_ties.sql").fetchone()[0],
        )
