"""preference_pairs and feedback: hand-made staging rows given -> mart rows expected.

The cases that take the marts' slow paths on purpose: a pair loaded twice (the
copy from the earlier ingest is kept), completions voted on several times (net
vote, ties left out and counted, the winning side's smallest pair id), and the
common single vote that skips grouping.
"""
from __future__ import annotations

from datetime import datetime

import pytest

from schemas.config import BinarizeConfig
from tasks.binarize.marts import binarize
from tasks.warehouse.connection import connect

EARLY, LATE = datetime(2026, 1, 1, 8), datetime(2026, 1, 2, 8)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def given(con) -> None:
    """b1 ingested before b2; every staging table gets rows."""
    for batch, at in (("b1", EARLY), ("b2", LATE)):
        con.execute("INSERT INTO ingest_runs (batch_id, source, file, file_sha256, started_at, finished_at, status)"
                    " VALUES ($b, 'hh', $b || '.jsonl', $b, $at, $at, 'loaded')", {"b": batch, "at": at})
    hh = ("INSERT INTO staging.stg_hh__pairs VALUES (thumbs_row_key_of($key), $batch, 'sha', 1, $prompt, $chosen, $rejected,"
          " thumbs_prompt_key($prompt))")
    # The same pair from two files under different raw text (row keys): kept once, from b1.
    con.execute(hh, {"key": "k-late", "batch": "b2", "prompt": user("Hi?"), "chosen": "Hello!", "rejected": "Go."})
    con.execute(hh, {"key": "k-early", "batch": "b1", "prompt": user("Hi?"), "chosen": "Hello!", "rejected": "Go."})
    con.execute(hh, {"key": "k-other", "batch": "b2", "prompt": user("2+2?"), "chosen": "4", "rejected": "5"})
    shp = ("INSERT INTO staging.stg_shp__pairs VALUES (thumbs_row_key_of($key), 'b1', 'sha', 1, 'post', $prompt, $chosen, $rejected,"
           " 10, 2, 5.0, thumbs_prompt_key($prompt))")
    # One post, three comments: A beats B, B beats C, A beats C.
    # Net votes: A +2 (up), B +1 -1 (tie: no row), C -2 (down).
    for key, chosen, rejected in (("s1", "A", "B"), ("s2", "B", "C"), ("s3", "A", "C")):
        con.execute(shp, {"key": key, "prompt": user("Which?"), "chosen": chosen, "rejected": rejected})
    rating = ("INSERT INTO staging.stg_log__ratings (row_key, batch_id, file_sha256, row_number, log_name, prompt,"
              " completion, rating_raw, label, prompt_key) VALUES (thumbs_row_key_of($key), 'b2', 'sha', 1, 'bot', $prompt,"
              " $completion, 'x', $label, thumbs_prompt_key($prompt))")
    # Rated by three users: up, up, down -> up. Rated up and down -> tie. Neutral -> no vote.
    for key, completion, label in (("r1", "Sure.", True), ("r2", "Sure.", True), ("r3", "Sure.", False),
                                   ("r4", "Maybe.", True), ("r5", "Maybe.", False), ("r6", "Hm.", None)):
        con.execute(rating, {"key": key, "prompt": user("Help?"), "completion": completion, "label": label})


@pytest.fixture()
def built(home):
    with connect(home) as con:
        given(con)
        result = binarize(con, BinarizeConfig(eval_fraction=0.5))
        yield con, result


def pair_id(con, source: str, prompt: str, chosen: str, rejected: str) -> str:
    return con.execute("SELECT thumbs_pair_id($s, $p, $c, $r)",
                       {"s": source, "p": user(prompt), "c": chosen, "r": rejected}).fetchone()[0]


def test_preference_pairs(built):
    con, result = built
    rows = con.execute("SELECT source, prompt[1].content, chosen, rejected, batch_id, ingested_at, pair_id"
                       " FROM preference_pairs ORDER BY ALL").fetchall()
    assert [row[:6] for row in rows] == [
        ("hh", "2+2?", "4", "5", "b2", LATE),
        ("hh", "Hi?", "Hello!", "Go.", "b1", EARLY),  # the earlier of its two copies
        ("shp", "Which?", "A", "B", "b1", EARLY),
        ("shp", "Which?", "A", "C", "b1", EARLY),
        ("shp", "Which?", "B", "C", "b1", EARLY),
    ]
    assert [row[6] for row in rows] == [pair_id(con, *row[:4]) for row in rows]
    assert sum(result.pairs.values()) == 5


def test_feedback_net_votes_ties_and_pair_ids(built):
    con, result = built
    rows = con.execute("SELECT source, prompt[1].content, completion, label, pair_id, batch_id"
                       " FROM feedback ORDER BY ALL").fetchall()
    a_over_b, b_over_c, a_over_c = (pair_id(con, "shp", "Which?", *sides) for sides in ("AB", "BC", "AC"))
    assert rows == [
        ("hh", "2+2?", "4", True, pair_id(con, "hh", "2+2?", "4", "5"), "b2"),
        ("hh", "2+2?", "5", False, pair_id(con, "hh", "2+2?", "4", "5"), "b2"),
        ("hh", "Hi?", "Go.", False, pair_id(con, "hh", "Hi?", "Hello!", "Go."), "b1"),
        ("hh", "Hi?", "Hello!", True, pair_id(con, "hh", "Hi?", "Hello!", "Go."), "b1"),
        ("log:bot", "Help?", "Sure.", True, None, "b2"),
        ("shp", "Which?", "A", True, min(a_over_b, a_over_c), "b1"),
        ("shp", "Which?", "C", False, min(b_over_c, a_over_c), "b1"),
    ]
    assert result.tied_completions == 2  # SHP's B and the log's "Maybe."


def test_feedback_ids_and_splits_follow_their_definitions(built):
    con, _ = built
    mismatches = con.execute(
        "SELECT count(*) FROM feedback"
        " WHERE feedback_id <> thumbs_feedback_id(source, prompt, completion, label)"
        "    OR split <> thumbs_split(prompt, 0.5)").fetchone()[0]
    assert mismatches == 0
    # the split is taken from the stored prompt key: each mart's key is its prompt's
    for mart in ("feedback", "preference_pairs", "feedback_ties"):
        assert con.execute(f"SELECT count(*), count(*) FILTER (WHERE prompt_key IS DISTINCT FROM"
                           f" thumbs_prompt_key(prompt)) FROM {mart}").fetchone()[1] == 0, mart
    assert con.execute("SELECT count(*) FROM feedback_ties").fetchone()[0] > 0
    # one prompt, one split, in both marts
    assert con.execute("SELECT count(*) FROM (SELECT prompt FROM (SELECT prompt, split FROM feedback UNION"
                       " SELECT prompt, split FROM preference_pairs) GROUP BY prompt HAVING count(*) > 1)"
                       ).fetchone()[0] == 0
