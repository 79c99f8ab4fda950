"""Incremental binarize equals a full one: a warehouse fed in steps (real HH and
OASST slices, hand-made files for the hard cases) is binarized incrementally after
each step, and every mart is compared row for row with a full rebuild of a copy.

The hard cases, each arriving in a later step than what it changes:
  * a HH pair reversed in another file: its two replies' votes tie (feedback_ties);
  * an A/B log pair repeated under another event id in another file (a duplicate
    pair across files: the first copy's batch is kept);
  * log ratings whose tally flips: up, then a down vote (tie), then another down;
  * OASST: a best-ranked reply that arrives late (new best, new thumbs for its
    older siblings), and a prompter message whose replies arrived before it (a
    subtree that becomes reachable).
"""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import duckdb

from schemas.config import BinarizeConfig
from tasks.binarize.marts import binarize
from tasks.ingest.load import ingest_file
from tasks.sources import bind_source
from tasks.warehouse.connection import connect
from tests.samples import DEMO_HH_HARMLESS, DEMO_HH_HELPFUL, OASST_QUIRKS, hh_quirks, read_records

MARTS = ("preference_pairs", "feedback", "feedback_ties", "feedback_one_per_prompt")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = BinarizeConfig(eval_fraction=0.5)  # both splits well filled on small data


def hh_pair(human: str, chosen: str, rejected: str) -> dict[str, str]:
    return {"chosen": f"\n\nHuman: {human}\n\nAssistant: {chosen}",
            "rejected": f"\n\nHuman: {human}\n\nAssistant: {rejected}"}


def rating(event: str, user: str, question: str, answer: str, feedback: str) -> dict[str, str]:
    return {"id": event, "created_at": "2024-05-06T07:01:36Z", "thread": "th_1", "user": user,
            "model": "m1", "question": question, "answer": answer, "feedback": feedback}


def ab_csv(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """An A/B log (examples/ab-test.mapping.yaml) of (event, question, reply A, reply B, winner) rows."""
    lines = ["event_id,ts,session,user,variant_a,variant_b,question,response_a,response_b,preferred"]
    lines += [f"{event},1717407155,s1,cust-1,v1,v2,{question},{a},{b},{winner}"
              for event, question, a, b, winner in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def oasst_late_messages(messages: list[dict]) -> tuple[str, str]:
    """Two messages to hold back: a rank-0 reply with ranked siblings (a late best
    reply), and a non-root prompter message with ranked replies (a late parent)."""
    ranked = {}
    for message in messages:
        if message["role"] == "assistant" and message["rank"] is not None and not message["deleted"]:
            ranked.setdefault(message["parent_id"], []).append(message)
    by_id = {message["message_id"]: message for message in messages}
    late_best = next(reply["message_id"] for parent, replies in ranked.items() if len(replies) >= 3
                     for reply in replies if reply["rank"] == 0)
    late_parent = next(parent for parent, replies in ranked.items() if len(replies) >= 2
                       and by_id[parent]["parent_id"] is not None
                       and late_best not in {reply["message_id"] for reply in replies})
    return late_best, late_parent


def steps(tmp: Path) -> list[list[tuple[str, Path, str | None]]]:
    """Each step: the files it ingests, as (source, path, mapping)."""
    ratings, ab = str(EXAMPLES / "support-bot.mapping.yaml"), str(EXAMPLES / "ab-test.mapping.yaml")
    messages = read_records(OASST_QUIRKS)
    late = set(oasst_late_messages(messages))
    on_time = write_jsonl(tmp / "oasst-on-time.jsonl", [m for m in messages if m["message_id"] not in late])
    late_file = write_jsonl(tmp / "oasst-late.jsonl", [m for m in messages if m["message_id"] in late])
    return [
        [("hh", DEMO_HH_HELPFUL, None), ("oasst", on_time, None),
         ("hh", write_jsonl(tmp / "hh-a.jsonl", [hh_pair("Best fruit?", "Apples.", "Rocks."),
                                                 hh_pair("Best fruit?", "Pears.", "Rocks.")]), None),
         ("log", write_jsonl(tmp / "ratings-1.jsonl", [rating("e1", "u1", "Reset password?", "Use the link.", "up")]),
          ratings),
         ("log", ab_csv(tmp / "ab-1.csv", [("ab-1", "Which plan?", "Pro.", "Free.", "A")]), ab)],
        [("hh", DEMO_HH_HARMLESS, None), ("hh", hh_quirks("helpful-base"), None),
         ("hh", write_jsonl(tmp / "hh-b.jsonl", [hh_pair("Best fruit?", "Rocks.", "Apples.")]), None),
         ("log", write_jsonl(tmp / "ratings-2.jsonl", [rating("e2", "u2", "Reset password?", "Use the link.", "down"),
                                                       rating("e3", "u2", "Reset password?", "Call us.", "up")]),
          ratings),
         ("log", ab_csv(tmp / "ab-2.csv", [("ab-2", "Which plan?", "Pro.", "Free.", "A"),
                                           ("ab-3", "Which plan?", "Free.", "Enterprise.", "A")]), ab)],
        [("oasst", late_file, None), ("hh", hh_quirks("harmless-base"), None),
         ("log", write_jsonl(tmp / "ratings-3.jsonl", [rating("e4", "u3", "Reset password?", "Use the link.", "down")]),
          ratings)],
        [],  # nothing new: an incremental build that rebuilds nothing
    ]


def ingest_step(home: Path, files: list[tuple[str, Path, str | None]]) -> None:
    batch = str(uuid.uuid4())
    with connect(home) as con:
        for source, path, mapping in files:
            result = ingest_file(con, bind_source(source, mapping=mapping, home=home), path, batch)
            assert result.rows_read == result.rows_loaded + result.rows_duplicate + result.rows_quarantined


def differences(con: duckdb.DuckDBPyConnection, full: str) -> dict[str, tuple[int, int, int, int]]:
    """Mart -> (incremental rows, full rows, rows only incremental has, rows only full has), where any differ."""
    found = {}
    for mart in MARTS:
        counts = con.execute(f"""
            SELECT (SELECT count(*) FROM {mart}), (SELECT count(*) FROM {full}.{mart}),
                   (SELECT count(*) FROM (FROM {mart} EXCEPT ALL FROM {full}.{mart})),
                   (SELECT count(*) FROM (FROM {full}.{mart} EXCEPT ALL FROM {mart}))""").fetchone()
        if counts[0] != counts[1] or counts[2] or counts[3]:
            found[mart] = counts
    return found


def full_rebuild_of_copy(home: Path, copy: Path) -> Path:
    """A copy of the warehouse, rebuilt in full."""
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    with connect(home) as con:
        con.execute("CHECKPOINT")
    shutil.copy(home / "warehouse.duckdb", copy / "warehouse.duckdb")
    with connect(copy) as con:
        assert binarize(con, CONFIG, full=True).mode == "full"
    return copy / "warehouse.duckdb"


def recount(con: duckdb.DuckDBPyConnection, query: str) -> dict:
    return {(key, part): n for key, part, n in con.execute(query + " GROUP BY ALL").fetchall()}


def test_an_incremental_build_after_one_with_no_recorded_counts_counts_the_marts(home, tmp_path):
    # builds from before migration 011 recorded no counts: the next one recounts, then keeps them
    ingest_step(home, [("hh", DEMO_HH_HELPFUL, None)])
    with connect(home) as con:
        binarize(con, CONFIG)
        con.execute("UPDATE binarize_builds SET counts = NULL")
    ingest_step(home, [("hh", write_jsonl(tmp_path / "more.jsonl", [hh_pair("Best fruit?", "Apples.", "Rocks.")]),
                        None)])
    with connect(home) as con:
        built = binarize(con, CONFIG)
        assert built.mode == "incremental" and sum(built.pairs.values()) > 100
        assert built.pairs == recount(con, "SELECT source, split, count(*) FROM preference_pairs")
        assert con.execute("SELECT count(*) FROM binarize_builds WHERE counts IS NULL").fetchone() == (1,)


def test_incremental_marts_equal_a_full_rebuild_after_every_step(home, tmp_path):
    results = []
    for number, files in enumerate(steps(tmp_path), start=1):
        ingest_step(home, files)
        with connect(home) as con:
            results.append(binarize(con, CONFIG))
        full = full_rebuild_of_copy(home, tmp_path / f"full-{number}")
        with connect(home) as con:
            con.execute(f"ATTACH '{full}' AS full_build (READ_ONLY)")
            assert differences(con, "full_build") == {}, f"step {number}"
            total_keys = con.execute("SELECT count(DISTINCT (source, prompt)) FROM preference_pairs").fetchone()[0]
            # an incremental build reports its counts from the last build's, less and plus what it replaced
            assert results[-1].pairs == recount(con, "SELECT source, split, count(*) FROM preference_pairs"), number
            assert results[-1].feedback == recount(con, "SELECT source, label, count(*) FROM feedback"), number
        if number > 1:  # the first build has nothing to build on
            assert results[-1].mode == "incremental", results[-1].reason
            assert 0 <= results[-1].rebuilt_keys < total_keys
    assert [r.mode for r in results] == ["full", "incremental", "incremental", "incremental"]
    assert results[-1].new_batches == 0 and results[-1].rebuilt_keys == 0
    assert results[0].tied_completions < results[1].tied_completions  # the reversed HH pair
    with connect(home) as con:
        # the hard cases took effect: a tie, a flipped tally, a duplicate pair kept once
        ties = {c for (c,) in con.execute("SELECT completion FROM feedback_ties WHERE source = 'hh'").fetchall()}
        assert ties == {"Apples."}  # up in hh-a, down in hh-b; Rocks. is down twice, up once
        assert con.execute("SELECT label FROM feedback WHERE completion = 'Rocks.'").fetchall() == [(False,)]
        assert con.execute("SELECT label FROM feedback WHERE completion = 'Use the link.'").fetchall() == [(False,)]
        assert con.execute("SELECT count(*) FROM preference_pairs WHERE chosen = 'Pro.'").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM binarize_batches").fetchone()[0] == 3


def test_late_oasst_messages_change_pairs_of_prompts_built_before(home, tmp_path):
    messages = read_records(OASST_QUIRKS)
    late_best, late_parent = oasst_late_messages(messages)
    by_id = {m["message_id"]: m for m in messages}
    on_time = write_jsonl(tmp_path / "on-time.jsonl",
                          [m for m in messages if m["message_id"] not in {late_best, late_parent}])
    late = write_jsonl(tmp_path / "late.jsonl", [by_id[late_best], by_id[late_parent]])
    ingest_step(home, [("oasst", on_time, None)])
    with connect(home) as con:
        binarize(con, CONFIG)
        chosen_before = {c for (c,) in con.execute("SELECT chosen FROM preference_pairs").fetchall()}
    ingest_step(home, [("oasst", late, None)])
    with connect(home) as con:
        result = binarize(con, CONFIG)
        chosen_after = {c for (c,) in con.execute("SELECT chosen FROM preference_pairs").fetchall()}
        replies_of_late_parent = [m["text"] for m in messages if m["parent_id"] == late_parent]
    assert result.mode == "incremental"
    assert by_id[late_best]["text"] in chosen_after - chosen_before  # the new best reply
    assert set(replies_of_late_parent) & (chosen_after - chosen_before)  # the subtree now reachable
    full = full_rebuild_of_copy(home, tmp_path / "full")
    with connect(home) as con:
        con.execute(f"ATTACH '{full}' AS full_build (READ_ONLY)")
        assert differences(con, "full_build") == {}


def oasst_message(message_id: str, parent_id: str | None, role: str, text: str, rank: int | None) -> dict:
    return {"message_id": message_id, "parent_id": parent_id, "message_tree_id": "t-root", "text": text,
            "role": role, "lang": "en", "review_result": True, "deleted": False, "rank": rank,
            "synthetic": False, "created_date": "2023-02-07T17:29:24+00:00"}


def test_a_late_oasst_reply_that_unmakes_pairs_removes_them(home, tmp_path):
    """A late co-best reply with the text of the beaten one: the group expresses no
    preference any more, its only pair goes, and no row of the new batch names the prompt."""
    ingest_step(home, [("oasst", write_jsonl(tmp_path / "tree.jsonl", [
        oasst_message("t-root", None, "prompter", "Name a colour.", None),
        oasst_message("t-a", "t-root", "assistant", "Blue.", 0),
        oasst_message("t-b", "t-root", "assistant", "Beige.", 1)]), None)])
    with connect(home) as con:
        binarize(con, CONFIG)
        assert con.execute("SELECT chosen, rejected FROM preference_pairs").fetchall() == [("Blue.", "Beige.")]
    ingest_step(home, [("oasst", write_jsonl(tmp_path / "late.jsonl", [
        oasst_message("t-c", "t-root", "assistant", "Beige.", 0)]), None)])
    with connect(home) as con:
        result = binarize(con, CONFIG)
        assert (result.mode, result.rebuilt_keys) == ("incremental", 1)
        assert con.execute("SELECT count(*) FROM preference_pairs").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0


def test_changed_options_rebuild_in_full_and_say_why(home):
    ingest_step(home, [("hh", DEMO_HH_HELPFUL, None)])
    with connect(home) as con:
        first = binarize(con, CONFIG)
        same = binarize(con, CONFIG)
        changed = binarize(con, BinarizeConfig(eval_fraction=0.2))
        asked = binarize(con, BinarizeConfig(eval_fraction=0.2), full=True)
        builds = con.execute("SELECT mode, new_batches FROM binarize_builds ORDER BY built_at").fetchall()
    assert (first.mode, first.reason) == ("full", "full rebuild: no earlier build recorded")
    assert same.mode == "incremental" and same.rebuilt_keys == 0
    assert changed.mode == "full" and "eval_fraction 0.5 -> 0.2" in changed.reason
    assert sum(changed.pairs.values()) == sum(first.pairs.values())
    assert changed.pairs != first.pairs  # the split moved with the fraction, as a full build moves it
    assert asked.reason == "full rebuild asked for (--full)"
    assert builds == [("full", 1), ("incremental", 0), ("full", 0), ("full", 0)]
