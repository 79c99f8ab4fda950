"""int_oasst__pairs / int_oasst__ratings: hand-made trees given -> rows expected, then
real exports: the shipped slices (every tree with an exclusion quirk) and, where
present, the whole files, reconciled with docs/data-quirks.md#oasst."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from tasks.sources import oasst
from tasks.warehouse.connection import connect, run_sql
from samples import DEMO_OASST_TREES, OASST_QUIRKS, shared_data
from .staging import staged_rows

PAIRS = "models/intermediate/int_oasst__pairs.sql"
RATINGS = "models/intermediate/int_oasst__ratings.sql"
RANKED = "models/intermediate/int_oasst__ranked_pairs.sql"


def build_pairs(con, include_synthetic: bool) -> None:
    run_sql(con, RANKED, {"include_synthetic": include_synthetic})
    run_sql(con, PAIRS)


def build_ratings(con, include_synthetic: bool, rule: str) -> None:
    run_sql(con, RANKED, {"include_synthetic": include_synthetic})
    run_sql(con, RATINGS, {"thumbs_rule": rule})


def msg(message_id: str, parent_id: str | None, role: str, content: str, rank: int | None = None,
        *, deleted: bool = False, synthetic: bool = False, review_result: bool | None = True,
        batch_id: str = "b1") -> dict[str, Any]:
    return {"row_key": message_id, "message_id": message_id, "parent_id": parent_id,
            "message_tree_id": "t", "role": role, "content": content, "rank": rank,
            "deleted": deleted, "synthetic": synthetic, "review_result": review_result,
            "lang": "en", "created_at": None, "batch_id": batch_id, "file_sha256": "sha",
            "row_number": 1}


# Tree 1 (root u1). Each line says what the message is there to test.
GIVEN = [
    msg("u1", None, "user", "Q1"),
    msg("a1", "u1", "assistant", "A-best", 0),          # a 3-reply ranked group ...
    msg("a2", "u1", "assistant", "A-mid", 1),
    msg("a3", "u1", "assistant", "A-worst", 2),
    msg("a4", "u1", "assistant", "A-deleted", 3, deleted=True),  # ... whose deleted reply is not the worst
    msg("a5", "u1", "assistant", "A-unranked"),        # unranked replies are not compared
    msg("u2", "a1", "user", "Q2"),
    msg("b1", "u2", "assistant", "B-tie-x", 0),         # tied best: no pair between them,
    msg("b2", "u2", "assistant", "B-tie-y", 0),         # both beat the lower one
    msg("b3", "u2", "assistant", "B-low", 1),
    msg("u3", "a2", "user", "Q3-deleted", deleted=True),  # a deleted prompt in mid-tree ...
    msg("c1", "u3", "assistant", "C-best", 0),            # ... takes its replies
    msg("c2", "u3", "assistant", "C-worst", 1),
    msg("u4", "c1", "user", "Q4"),                         # ... and everything below them
    msg("d1", "u4", "assistant", "D-best", 0),
    msg("d2", "u4", "assistant", "D-worst", 1),
    msg("u5", "a3", "user", "Q5", batch_id="b2"),
    msg("e1", "u5", "assistant", "E-synthetic", 0, synthetic=True),  # a synthetic best reply
    msg("e2", "u5", "assistant", "E-human", 1),
    msg("e3", "u5", "assistant", "E-human-2", 2, review_result=None, batch_id="b3"),  # NULL review: kept
    msg("u6", "a1", "user", "Q6-rejected", review_result=False),  # rejected by review, with its subtree
    msg("g1", "u6", "assistant", "G-best", 0),
    msg("g2", "u6", "assistant", "G-worst", 1),
    # Tree 2: a synthetic root prompt (human replies below it).
    msg("u7", None, "user", "Q7-synthetic", synthetic=True),
    msg("h1", "u7", "assistant", "H-best", 0),
    msg("h2", "u7", "assistant", "H-worst", 1, batch_id="b5"),
    # Tree 3: all replies tie: no preference at all.
    msg("u8", None, "user", "Q8"),
    msg("i1", "u8", "assistant", "I-x", 1),
    msg("i2", "u8", "assistant", "I-y", 1),
    # Tree 4: a lower-ranked reply with the best reply's exact text.
    msg("u9", None, "user", "Q9", batch_id="b4"),
    msg("j1", "u9", "assistant", "same", 0),
    msg("j2", "u9", "assistant", "same", 1),
    msg("j3", "u9", "assistant", "other", 2),
    # Orphans: parents that never reached the warehouse.
    msg("o1", "gone", "assistant", "O-best", 0),
    msg("o2", "gone", "assistant", "O-worst", 1),
    msg("o3", "gone-too", "user", "Q-orphan"),
    msg("o4", "o3", "assistant", "O4-best", 0),
    msg("o5", "o3", "assistant", "O5-worst", 1),
    # A prompter answering a prompter: not a dialogue, so not a prompt.
    msg("x1", "u8", "user", "Q-after-Q"),
    msg("x2", "x1", "assistant", "X-best", 0),
    msg("x3", "x1", "assistant", "X-worst", 1),
]

P1 = (("user", "Q1"),)
P2 = (("user", "Q1"), ("assistant", "A-best"), ("user", "Q2"))
P5 = (("user", "Q1"), ("assistant", "A-worst"), ("user", "Q5"))
P7 = (("user", "Q7-synthetic"),)
P9 = (("user", "Q9"),)

# (prompt, chosen, rejected, batch_id). No ingest_runs rows here, so the latest batch among
# the path and both replies falls back to the largest id (b1 < b2 < ...).
HUMAN_PAIRS = {
    (P1, "A-best", "A-mid", "b1"),
    (P1, "A-best", "A-worst", "b1"),
    (P2, "B-tie-x", "B-low", "b1"),
    (P2, "B-tie-y", "B-low", "b1"),
    (P9, "same", "other", "b4"),
}
PAIRS_WITHOUT_SYNTHETIC = HUMAN_PAIRS | {(P5, "E-human", "E-human-2", "b3")}
PAIRS_WITH_SYNTHETIC = HUMAN_PAIRS | {
    (P5, "E-synthetic", "E-human", "b2"),
    (P5, "E-synthetic", "E-human-2", "b3"),
    (P7, "H-best", "H-worst", "b5"),
}

# (prompt, completion, label, pair_chosen, pair_rejected, batch_id)
HUMAN_THUMBS = {
    (P1, "A-best", True, "A-best", "A-worst", "b1"),
    (P1, "A-worst", False, "A-best", "A-worst", "b1"),
    (P2, "B-tie-x", True, "B-tie-x", "B-low", "b1"),
    (P2, "B-tie-y", True, "B-tie-y", "B-low", "b1"),
    (P2, "B-low", False, "B-tie-x", "B-low", "b1"),  # tied best: the smaller message_id (b1)
    (P9, "same", True, "same", "other", "b4"),
    (P9, "other", False, "same", "other", "b4"),
}
THUMBS = {
    ("best_worst", False): HUMAN_THUMBS | {
        (P5, "E-human", True, "E-human", "E-human-2", "b3"),
        (P5, "E-human-2", False, "E-human", "E-human-2", "b3"),
    },
    ("best_worst", True): HUMAN_THUMBS | {
        (P5, "E-synthetic", True, "E-synthetic", "E-human-2", "b3"),
        (P5, "E-human-2", False, "E-synthetic", "E-human-2", "b3"),
        (P7, "H-best", True, "H-best", "H-worst", "b5"),
        (P7, "H-worst", False, "H-best", "H-worst", "b5"),
    },
}
THUMBS[("best_rest", False)] = THUMBS[("best_worst", False)] | {
    (P1, "A-mid", False, "A-best", "A-mid", "b1"),
}
THUMBS[("best_rest", True)] = THUMBS[("best_worst", True)] | {
    (P1, "A-mid", False, "A-best", "A-mid", "b1"),
    (P5, "E-human", False, "E-synthetic", "E-human", "b2"),
}


def insert(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows)
    con.register("given_rows", table)
    con.execute("INSERT INTO staging.stg_oasst__messages BY NAME"
                " SELECT * REPLACE (thumbs_row_key_of(row_key) AS row_key) FROM given_rows")
    con.unregister("given_rows")


def rows_of(con: duckdb.DuckDBPyConnection, table: str) -> set[tuple]:
    """The table's rows without `source` (and `prompt_key`, checked to be the prompt's),
    prompts as tuples of (role, content)."""
    if "prompt_key" in {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}:
        assert con.execute(f"SELECT count(*) FROM {table} WHERE prompt_key IS DISTINCT FROM"
                           " thumbs_prompt_key(prompt)").fetchone()[0] == 0
        table = f"(SELECT * EXCLUDE (prompt_key, staging_row) FROM {table})"
    result = con.execute(f"SELECT * FROM {table}").fetchall()
    assert {row[0] for row in result} <= {"oasst"}
    rows = [(tuple((turn["role"], turn["content"]) for turn in row[1]),) + row[2:] for row in result]
    assert len(set(rows)) == len(rows), "duplicate rows"
    return set(rows)


@pytest.fixture()
def warehouse(home):
    with connect(home) as con:
        insert(con, GIVEN)
        yield con


@pytest.mark.parametrize("include_synthetic, want", [
    (False, PAIRS_WITHOUT_SYNTHETIC), (True, PAIRS_WITH_SYNTHETIC)])
def test_pairs(warehouse, include_synthetic, want):
    build_pairs(warehouse, include_synthetic)
    columns = warehouse.execute("DESCRIBE int_oasst__pairs").fetchall()
    assert [(c[0], c[1]) for c in columns] == [
        ("source", "VARCHAR"), ("prompt", 'STRUCT("role" VARCHAR, "content" VARCHAR)[]'), ("prompt_key", "UHUGEINT"),
        ("chosen", "VARCHAR"), ("rejected", "VARCHAR"), ("margin", "DOUBLE"), ("batch_id", "VARCHAR"),
        ("staging_row", "BIGINT")]
    got = rows_of(warehouse, "int_oasst__pairs")
    assert {row[3] for row in got} == {None}  # margin: OASST ranks carry no strength
    assert {row[:3] + row[4:] for row in got} == want


@pytest.mark.parametrize("rule, include_synthetic", sorted(THUMBS))
def test_ratings(warehouse, rule, include_synthetic):
    build_ratings(warehouse, include_synthetic, rule)
    columns = warehouse.execute("DESCRIBE int_oasst__ratings").fetchall()
    assert [c[0] for c in columns] == [
        "source", "prompt", "completion", "label", "pair_chosen", "pair_rejected", "batch_id"]
    assert rows_of(warehouse, "int_oasst__ratings") == THUMBS[(rule, include_synthetic)]


@pytest.mark.parametrize("rule", ["best_worst", "best_rest"])
@pytest.mark.parametrize("include_synthetic", [False, True])
def test_every_thumb_points_at_a_pair(warehouse, rule, include_synthetic):
    # The two models repeat their CTEs; this keeps them from drifting apart.
    build_pairs(warehouse, include_synthetic)
    build_ratings(warehouse, include_synthetic, rule)
    orphaned = warehouse.execute(
        "SELECT count(*) FROM int_oasst__ratings AS r ANTI JOIN int_oasst__pairs AS p "
        "ON p.prompt = r.prompt AND p.chosen = r.pair_chosen AND p.rejected = r.pair_rejected"
    ).fetchall()[0][0]
    assert orphaned == 0


@pytest.mark.parametrize("prompt_batch, worst_batch", [
    ("aa-later", "zz-earlier"),  # the prompt's run brought the missing parent
    ("zz-earlier", "aa-later"),  # a reply arrived in a later run
])
def test_batch_is_the_latest_run_not_the_largest_id(home, prompt_batch, worst_batch):
    with connect(home) as con:
        insert(con, [msg("u1", None, "user", "Q", batch_id=prompt_batch),
                     msg("r1", "u1", "assistant", "R-best", 0, batch_id="zz-earlier"),
                     msg("r2", "u1", "assistant", "R-worst", 1, batch_id=worst_batch)])
        con.execute(
            "INSERT INTO ingest_runs (batch_id, source, file, file_sha256, started_at, status) VALUES "
            "('zz-earlier', 'oasst', 'a.jsonl', 'sha-a', TIMESTAMP '2024-01-01 00:00', 'loaded'),"
            "('aa-later', 'oasst', 'b.jsonl', 'sha-b', TIMESTAMP '2024-01-02 00:00', 'loaded')")
        build_pairs(con, False)
        assert rows_of(con, "int_oasst__pairs") == {((("user", "Q"),), "R-best", "R-worst", None, "aa-later")}
        build_ratings(con, False, "best_worst")
        assert {row[-1] for row in rows_of(con, "int_oasst__ratings")} == {"aa-later"}


@pytest.mark.parametrize("rule", ["best", "", None])
def test_unknown_thumbs_rule_fails_loudly(warehouse, rule):
    with pytest.raises(duckdb.InvalidInputException, match="thumbs_rule must be best_worst or best_rest"):
        build_ratings(warehouse, False, rule)


# --- the real validation file ---------------------------------------------------------


def staged_oasst(path: Path, batch_id: str) -> list[dict[str, Any]]:
    return staged_rows(path, oasst.parse, batch_id)[oasst.TABLE]


def pair_count(con: duckdb.DuckDBPyConnection, include_synthetic: bool = False) -> int:
    build_pairs(con, include_synthetic)
    return con.execute("SELECT count(*) FROM int_oasst__pairs").fetchall()[0][0]


def thumb_counts(con: duckdb.DuckDBPyConnection, rule: str) -> dict[bool, int]:
    build_ratings(con, False, rule)
    return dict(con.execute("SELECT label, count(*) FROM int_oasst__ratings GROUP BY label").fetchall())


@dataclass(frozen=True)
class Exports:
    """A flat export and a tree export of OASST, with their counts: ranked groups and
    pairs counted in Python on the staged rows, pairs the SQL must keep."""

    flat: Path
    trees: Path
    groups: int  # assistant sibling groups with two or more ranked replies
    sibling_pairs: int  # every pair of ranked siblings
    best_vs_lower: int  # the best with each lower rank
    pairs: int  # best_vs_lower less the 3 deleted ranked replies and the repeated reply
    kept_groups: int  # groups left with a pair
    tree_pairs: int  # pairs of the tree export, synthetic groups left out
    tree_pairs_with_synthetic: int
    flat_messages: int
    tree_messages: int
    shared_messages: int  # in both exports (the same trees)
    shared_pairs: int  # the pairs those shared trees hold


@pytest.fixture(params=["shipped slices", "whole files"])
def exports(request) -> Exports:
    if request.param == "shipped slices":
        return Exports(OASST_QUIRKS, DEMO_OASST_TREES, groups=20, sibling_pairs=42, best_vs_lower=31, pairs=27,
                       kept_groups=18, tree_pairs=112, tree_pairs_with_synthetic=118, flat_messages=95,
                       tree_messages=327, shared_messages=37, shared_pairs=13)
    folder = shared_data("the whole OASST files, to reconcile with the counts of docs/data-quirks.md") / "oasst"
    return Exports(folder / "oasst1-en-validation.jsonl", folder / "en_100_tree.jsonl", groups=418,
                   sibling_pairs=1026, best_vs_lower=714, pairs=710, kept_groups=416, tree_pairs=417,
                   tree_pairs_with_synthetic=429, flat_messages=2022, tree_messages=1167, shared_messages=73,
                   shared_pairs=25)


def test_validation_file_reconciles_with_sources_md(exports, home):
    rows = staged_oasst(exports.flat, "b1")
    # docs/data-quirks.md counts every pair of ranked siblings: 418 groups, 1026 pairs in the whole file.
    groups: dict[str, list[int]] = {}
    for row in rows:
        if row["role"] == "assistant" and row["rank"] is not None:
            groups.setdefault(row["parent_id"], []).append(row["rank"])
    groups = {parent: ranks for parent, ranks in groups.items() if len(ranks) >= 2}
    assert len(groups) == exports.groups
    assert sum(len(list(combinations(ranks, 2))) for ranks in groups.values()) == exports.sibling_pairs
    # The binarization rules pair the best with each lower rank only, not mid with mid.
    assert sum(sum(r > min(ranks) for r in ranks) for ranks in groups.values()) == exports.best_vs_lower

    with connect(home) as con:
        insert(con, rows)
        assert pair_count(con) == exports.pairs
        assert pair_count(con, include_synthetic=True) == exports.pairs  # no synthetic row in this file
        assert thumb_counts(con, "best_worst") == {True: exports.kept_groups, False: exports.kept_groups}
        assert thumb_counts(con, "best_rest") == {True: exports.kept_groups, False: exports.pairs}
        # Each exclusion, measured by switching it off in the staged data:
        con.execute("UPDATE staging.stg_oasst__messages SET review_result = NULL")
        assert pair_count(con) == exports.pairs  # review_result = false: removes 0 (no rejected message is ranked or has replies)
        con.execute("UPDATE staging.stg_oasst__messages SET deleted = false")
        assert pair_count(con) == exports.pairs + 3  # deleted: removes 3 (the 3 deleted ranked replies)
        # The last one: a rank-2 reply whose text equals the best's ("Jay's brother is John.").
        # Orphans remove none: the 3 messages with a missing parent are unranked leaves.
        orphans = con.execute(
            "SELECT role, rank FROM staging.stg_oasst__messages WHERE parent_id NOT IN "
            "(SELECT message_id FROM staging.stg_oasst__messages)").fetchall()
        assert Counter(orphans) == {("assistant", None): 2, ("user", None): 1}


def test_both_files_dedupe_and_pair(exports, home):
    flat = staged_oasst(exports.flat, "b1")
    trees = staged_oasst(exports.trees, "b2")
    with connect(home) as con:
        insert(con, trees)
        assert pair_count(con) == exports.tree_pairs  # best-vs-lower pairs less those in synthetic groups
        assert pair_count(con, include_synthetic=True) == exports.tree_pairs_with_synthetic
        known = {row["message_id"] for row in trees}
        insert(con, [row for row in flat if row["message_id"] not in known])  # the loader's dedupe
        assert con.execute("SELECT count(*) FROM staging.stg_oasst__messages").fetchall()[0][0] == \
            exports.flat_messages + exports.tree_messages - exports.shared_messages
        assert pair_count(con) == exports.pairs + exports.tree_pairs - exports.shared_pairs
