"""Incremental builds of the marts, as dbt's incremental models: rebuild only the
(source, prompt) keys that staging rows loaded since the last build touch.

A build is incremental when the last recorded build ran the same options over
the same SQL; otherwise (or with `thumbs binarize --full`) it is full, and its
reason says why. Which keys a new row touches, and why rebuilding them gives what
a full build gives, is in warehouse/statements/binarize/scope.sql and scope_oasst.sql.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field

import duckdb

from schemas.config import BinarizeConfig
from tasks.common.settings import WAREHOUSE_SQL
from tasks.sources import staging_tables
from tasks.warehouse.connection import run_sql

# What decides the marts' rows: a build over other SQL than the last one's is full.
BUILD_SQL = ("models", "macros", "statements/binarize")


@dataclass
class MartCounts:
    """What the marts hold per source: pairs per split, thumbs per label."""

    pairs: Counter = field(default_factory=Counter)  # (source, split) -> pairs
    feedback: Counter = field(default_factory=Counter)  # (source, label) -> rows

    def __add__(self, other: MartCounts) -> MartCounts:
        return MartCounts(self.pairs + other.pairs, self.feedback + other.feedback)

    def __sub__(self, other: MartCounts) -> MartCounts:
        return MartCounts(self.pairs - other.pairs, self.feedback - other.feedback)

    def to_json(self) -> str:
        return json.dumps({"pairs": [[*key, n] for key, n in sorted(self.pairs.items())],
                           "feedback": [[*key, n] for key, n in sorted(self.feedback.items())]})

    @classmethod
    def from_json(cls, text: str) -> MartCounts:
        data = json.loads(text)
        return cls(Counter({(s, sp): n for s, sp, n in data["pairs"]}),
                   Counter({(s, lb): n for s, lb, n in data["feedback"]}))


def count_marts(con: duckdb.DuckDBPyConnection, pairs: str = "preference_pairs",
                feedback: str = "feedback") -> MartCounts:
    """The counts of the relations named (the marts, or the rows a merge deletes or inserts)."""
    return MartCounts(
        Counter({(s, sp): n for s, sp, n in run_sql(con, "statements/binarize/count_pairs.sql",
                                                     {"relation": pairs}).fetchall()}),
        Counter({(s, lb): n for s, lb, n in run_sql(con, "statements/binarize/count_feedback.sql",
                                                     {"relation": feedback}).fetchall()}))


@dataclass(frozen=True)
class BuildPlan:
    mode: str  # full | incremental
    reason: str  # why that mode, in words for the report
    options: dict
    models_sha256: str
    last_counts: MartCounts | None = None  # what the last build left, when recorded

    @property
    def incremental(self) -> bool:
        return self.mode == "incremental"


def models_sha256() -> str:
    """sha256 over every SQL file a build runs, by path and content."""
    digest = hashlib.sha256()
    for folder in BUILD_SQL:
        for path in sorted((WAREHOUSE_SQL / folder).rglob("*.sql")):
            digest.update(str(path.relative_to(WAREHOUSE_SQL)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def plan_build(con: duckdb.DuckDBPyConnection, config: BinarizeConfig, full: bool) -> BuildPlan:
    options, sha = config.model_dump(), models_sha256()
    last = run_sql(con, "statements/binarize/last_build.sql").fetchone()
    if full:
        return BuildPlan("full", "full rebuild asked for (--full)", options, sha)
    if last is None:
        return BuildPlan("full", "full rebuild: no earlier build recorded", options, sha)
    last_options, last_sha = json.loads(last[0]), last[1]
    if last_options != options:
        changed = ", ".join(f"{name} {last_options.get(name)!r} -> {value!r}"
                            for name, value in options.items() if last_options.get(name) != value)
        return BuildPlan("full", f"full rebuild: options changed since the last build ({changed})", options, sha)
    if last_sha != sha:
        return BuildPlan("full", "full rebuild: the SQL models changed since the last build", options, sha)
    return BuildPlan("incremental", "incremental: only prompts touched by batches loaded since the last build",
                     options, sha, MartCounts.from_json(last[2]) if last[2] is not None else None)


def find_new_batches(con: duckdb.DuckDBPyConnection) -> int:
    """Fill binarize_new_batches; how many there are."""
    run_sql(con, "statements/binarize/new_batches.sql", {"staging_tables": staging_tables()})
    return con.execute("SELECT count(*) FROM binarize_new_batches").fetchone()[0]


def scope_changes(con: duckdb.DuckDBPyConnection, pair_models: list[str], vote_models: list[str]) -> int:
    """Fill binarize_scope (the keys to rebuild), the changed pairs and votes tables
    int_pairs and int_votes then read, and binarize_merge_scope (the keys whose mart
    rows the merge deletes); how many keys there are."""
    run_sql(con, "statements/binarize/scope.sql", {"changed_models": pair_models + vote_models})
    run_sql(con, "statements/binarize/scope_oasst.sql")
    run_sql(con, "statements/binarize/pair_places.sql", {"pair_models": pair_models})
    run_sql(con, "statements/binarize/changed_pairs.sql", {"pair_models": pair_models})
    run_sql(con, "statements/binarize/vote_places.sql", {"vote_models": vote_models})
    run_sql(con, "statements/binarize/changed_votes.sql", {"vote_models": vote_models})
    run_sql(con, "statements/binarize/merge_scope.sql")
    return con.execute("SELECT count(*) FROM binarize_scope").fetchone()[0]


def merge_increment(con: duckdb.DuckDBPyConnection, plan: BuildPlan) -> MartCounts:
    """Replace the changed keys' mart rows (statements/binarize/merge_increment.sql);
    what the marts hold after: the last build's counts, less the rows deleted, plus
    the rows inserted (recounted when the last build recorded none)."""
    run_sql(con, "statements/binarize/merged_away.sql")
    away = count_marts(con, "binarize_merged_away_pairs", "binarize_merged_away_feedback")
    added = count_marts(con, "int_preference_pairs", "int_feedback")
    run_sql(con, "statements/binarize/merge_increment.sql")
    return plan.last_counts - away + added if plan.last_counts is not None else count_marts(con)


def record_build(con: duckdb.DuckDBPyConnection, plan: BuildPlan, rebuilt_keys: int | None,
                 counts: MartCounts) -> None:
    build_id = str(uuid.uuid4())
    run_sql(con, "statements/binarize/record_build.sql", {
        "build_id": build_id, "mode": plan.mode, "reason": plan.reason, "options": json.dumps(plan.options),
        "models_sha256": plan.models_sha256, "rebuilt_keys": rebuilt_keys, "counts": counts.to_json()})
    run_sql(con, "statements/binarize/record_batches.sql", {"build_id": build_id})
