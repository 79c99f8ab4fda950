"""Build the marts (`preference_pairs`, `feedback`, `feedback_ties`) and the analyst
views from staging: in full, or only the prompts new rows touch (increments.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from schemas.config import BinarizeConfig
from tasks.binarize.increments import (count_marts, find_new_batches, merge_increment, plan_build, record_build,
                                       scope_changes)
from tasks.common.settings import WAREHOUSE_SQL, ThumbsError
from tasks.sources import SOURCES
from tasks.sources.base import create_staging_tables
from tasks.warehouse.connection import column_names, run_sql, transaction

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
    ("models/intermediate/int_preference_pairs.sql", ()),
    ("models/intermediate/int_votes.sql", ()),
    ("models/intermediate/int_multi_vote_keys.sql", ()),
    ("models/intermediate/int_multi_vote_tallies.sql", ()),
    ("models/intermediate/int_feedback.sql", ()),
    ("models/intermediate/int_feedback_ties.sql", ()),
]
# The marts as a full build materializes them; an incremental build replaces their
# changed prompts' rows instead (statements/binarize/merge_increment.sql).
FULL_MARTS = ["models/marts/preference_pairs.sql", "models/marts/feedback.sql", "models/marts/feedback_ties.sql"]
MART_VIEWS = ["models/marts/feedback_one_per_prompt.sql"]
# Each source's models, named after it: int_<source>__pairs (its preference pairs)
# and int_<source>__votes (thumbs it gives replies directly), each optional.
SOURCE_MODELS = "models/intermediate"
# What every source model selects besides its rows' content: the prompt's stored key,
# and the row's place in the table it reads (incremental builds find rows by both).
MODEL_KEYS = ("prompt_key", "staging_row")


@dataclass
class BinarizeResult:
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, split) -> pairs
    feedback: dict[tuple[str, bool], int] = field(default_factory=dict)  # (source, label) -> rows
    tied_completions: int = 0  # rated up and down equally often: no label, left out
    mode: str = "full"  # full | incremental
    reason: str = ""  # why that mode
    new_batches: int = 0  # ingest batches this build took in
    rebuilt_keys: int | None = None  # (source, prompt) keys an incremental build rebuilt


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
    for source in SOURCES.values():  # a source never ingested still has (empty) tables to read
        create_staging_tables(con, source.staging)
    for name in source_models("pairs") + source_models("votes"):
        run_sql(con, f"{SOURCE_MODELS}/{name}.sql")
        # int_pairs unions the models by name: one without these would get NULLs, its
        # rows all in train and never found by an incremental build.
        present = column_names(con, "main", name)
        missing = [column for column in MODEL_KEYS if column not in present]
        if missing:
            raise ThumbsError(f"{SOURCE_MODELS}/{name}.sql: select {' and '.join(missing)} "
                              "(prompt_key beside prompt, rowid AS staging_row; see docs/add-a-source.md)")


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """The analyst views (warehouse/models/views/*.sql); they take no parameters."""
    for view in sorted((WAREHOUSE_SQL / "models" / "views").glob("*.sql")):
        run_sql(con, f"models/views/{view.name}")


def binarize(con: duckdb.DuckDBPyConnection, config: BinarizeConfig, full: bool = False) -> BinarizeResult:
    """Build the marts in one transaction: readers never see a half-built table, and a
    killed build leaves the marts and the watermark as they were. Incremental unless
    `full`, no build was recorded, or the options or SQL changed since the last one."""
    params = model_params(config)
    with transaction(con):
        plan = plan_build(con, config, full)
        for sql_file, names in SOURCE_INPUTS:
            run_sql(con, sql_file, {name: params[name] for name in names})
        create_source_models(con, config)
        new_batches = find_new_batches(con)
        rebuilt_keys = None
        if plan.incremental:
            rebuilt_keys = scope_changes(con, params["pair_models"], params["vote_models"])
            params |= {"pair_models": ["binarize_changed_pairs"], "vote_models": ["binarize_changed_votes"]}
        con.execute("SET VARIABLE binarize_vote_models = $models", {"models": params["vote_models"]})
        for sql_file, names in MODELS:
            run_sql(con, sql_file, {name: params[name] for name in names})
        if plan.incremental:
            counts = merge_increment(con, plan)
        else:
            for sql_file in FULL_MARTS:
                run_sql(con, sql_file)
            counts = count_marts(con)
        for sql_file in MART_VIEWS:
            run_sql(con, sql_file)
        create_views(con)
        record_build(con, plan, rebuilt_keys, counts)
        return BinarizeResult(
            pairs=dict(sorted(counts.pairs.items())), feedback=dict(sorted(counts.feedback.items())),
            tied_completions=run_sql(con, "statements/binarize/count_ties.sql").fetchone()[0],
            mode=plan.mode, reason=plan.reason, new_batches=new_batches, rebuilt_keys=rebuilt_keys,
        )
