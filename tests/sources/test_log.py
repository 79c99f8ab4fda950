"""The `log` source: mapping files, every accepted rating form, A/B pairs,
pseudonymized users, the reasons rows are rejected, and the shipped examples."""
from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from schemas.mapping import Mapping, check_columns, load_mapping, required_columns
from tasks.sources.pseudonym import pseudonymize
from tasks.common.settings import PROJECT_ROOT, ThumbsError
from tasks.sources.base import RowRejected, Staged
from tasks.sources.log import PAIRS_TABLE, RATINGS_TABLE, make_parser

KEY = b"test-key-for-pseudonyms-32-bytes"
EXAMPLES = PROJECT_ROOT / "examples"

RATED_COLUMNS = {
    "event_id": "id", "timestamp": "created_at", "conversation_id": "thread", "user_id": "user",
    "prompt": "question", "completion": "answer", "rating": "feedback", "model_version": "model",
}
PAIR_COLUMNS = {
    "event_id": "id", "user_id": "user", "prompt": "question",
    "completion_a": "response_a", "completion_b": "response_b", "winner": "preferred",
}


def rated(**rating) -> Mapping:
    return Mapping.model_validate({"name": "support-bot", "columns": RATED_COLUMNS, "rating": rating or {}})


def pairwise() -> Mapping:
    return Mapping.model_validate({"name": "ab-test", "columns": PAIR_COLUMNS})


def event(**changes) -> dict:
    record = {
        "id": "evt_1", "created_at": "2024-05-06T09:14:22Z", "thread": "th_1",
        "user": "maria.silva@example.com", "question": "How do I rotate my API key?",
        "answer": "Create a second key, deploy it, then revoke the old one.",
        "feedback": "up", "model": "acme-assist-2024.05",
    }
    record.update(changes)
    return record


def ab_event(**changes) -> dict:
    record = {"id": "ab-1", "user": "cust-1234", "question": "Which regions do you have?",
              "response_a": "us-east, eu-central and ap-southeast.", "response_b": "Worldwide.",
              "preferred": "A"}
    record.update(changes)
    return record


def parse_one(mapping: Mapping, record: dict) -> Staged:
    outcomes = list(make_parser(mapping, KEY)(record))
    assert len(outcomes) == 1 and isinstance(outcomes[0], Staged)
    return outcomes[0]


def rejected(mapping: Mapping, record: dict) -> str:
    with pytest.raises(RowRejected) as caught:
        list(make_parser(mapping, KEY)(record))
    return str(caught.value)


# --- ratings ------------------------------------------------------------------

@pytest.mark.parametrize("raw, label", [
    ("up", True), ("UP", True), ("  Down ", False), ("thumbs_up", True), ("Thumbs Down", False),
    ("thumbs-up", True), ("THUMBSDOWN", False), ("+1", True), ("-1", False), ("1", True), ("0", False),
    ("1.0", True), (1, True), (0, False), (-1, False), (1.0, True), (np.int64(-1), False),
    ("true", True), ("FALSE", False), ("True", True), (True, True), (False, False),
    ("👍", True), ("👎", False), ("👍\ufe0f", True), ("👍🏽", True), ("👎🏿", False), ("👎🏻\ufe0f", False),
])
def test_every_thumbs_form_gives_its_label(raw, label):
    staged = parse_one(rated(kind="thumbs"), event(feedback=raw))
    assert staged.table == RATINGS_TABLE
    assert staged.values["label"] is label


@pytest.mark.parametrize("raw, text", [("👍🏽", "👍🏽"), ("  Up", "  Up"), (True, "true"), (-1, "-1"), (4.5, "4.5")])
def test_rating_raw_keeps_the_original_text(raw, text):
    mapping = rated(kind="stars", up_at_least=4, down_at_most=2) if raw == 4.5 else rated()
    assert parse_one(mapping, event(feedback=raw)).values["rating_raw"] == text


@pytest.mark.parametrize("raw", ["meh", "🤷", "yes", 2, 0.5, "thumbs"])
def test_unknown_thumbs_rating_is_rejected(raw):
    assert rejected(rated(), event(feedback=raw)).startswith(f"unrecognised thumbs rating '{raw}'")


@pytest.mark.parametrize("raw, label", [
    (1, False), (2, False), ("2", False), (2.5, None), (3, None), ("3", None), (3.99, None),
    (4, True), ("4.0", True), (4.5, True), (5, True), (np.float64(5.0), True),
])
def test_stars_thresholds_and_the_neutral_band(raw, label):
    staged = parse_one(rated(kind="stars", up_at_least=4, down_at_most=2), event(feedback=raw))
    assert staged.values["label"] is label  # None: neutral, loaded and counted, not trained on


def test_stars_with_a_wide_neutral_band():
    mapping = rated(kind="stars", up_at_least=5, down_at_most=1)
    labels = [parse_one(mapping, event(feedback=s)).values["label"] for s in (1, 2, 3, 4, 5)]
    assert labels == [False, None, None, None, True]


@pytest.mark.parametrize("raw, reason", [
    (0, "outside 1-5"), (6, "outside 1-5"), ("5.5", "outside 1-5"), (-3, "outside 1-5"),
    ("great", "is not a number"), (True, "is not a number"), ("nan", "is not a number"),
    ("👍", "is not a number"),
])
def test_bad_stars_are_rejected(raw, reason):
    message = rejected(rated(kind="stars", up_at_least=4, down_at_most=2), event(feedback=raw))
    assert reason in message and "column 'feedback'" in message


def test_empty_rating_is_rejected():
    assert rejected(rated(), event(feedback="")) == "column 'feedback' (rating) is empty"
    assert rejected(rated(), event(feedback=None)) == "column 'feedback' (rating) is empty"


# --- A/B pairs ----------------------------------------------------------------

@pytest.mark.parametrize("winner, chosen", [("A", "response_a"), ("a", "response_a"), (" b ", "response_b"), ("B", "response_b")])
def test_ab_event_becomes_a_pair(winner, chosen):
    record = ab_event(preferred=winner)
    staged = parse_one(pairwise(), record)
    other = "response_b" if chosen == "response_a" else "response_a"
    assert staged.table == PAIRS_TABLE
    assert staged.values["chosen"] == record[chosen]
    assert staged.values["rejected"] == record[other]
    assert staged.values["prompt"] == [{"role": "user", "content": record["question"]}]
    assert staged.values["log_name"] == "ab-test"
    assert staged.row_key == "ab-test:ab-1"


@pytest.mark.parametrize("winner", ["tie", "TIE", "both", "none", "neither", "draw"])
def test_a_tie_is_rejected(winner):
    assert rejected(pairwise(), ab_event(preferred=winner)).startswith("no winner: column 'preferred'")


def test_unknown_winner_and_identical_completions_are_rejected():
    assert "unrecognised winner 'c'" in rejected(pairwise(), ab_event(preferred="c"))
    assert rejected(pairwise(), ab_event(preferred="")) == "column 'preferred' (winner) is empty"
    same = rejected(pairwise(), ab_event(response_b="us-east, eu-central and ap-southeast. "))
    assert same.startswith("columns 'response_a' and 'response_b' hold the same completion")
    assert rejected(pairwise(), ab_event(response_b="")) == "column 'response_b' (completion B) is empty"


# --- users, ids, timestamps ---------------------------------------------------

def test_user_ids_are_pseudonymized_and_never_stored():
    for mapping, record in ((rated(), event()), (pairwise(), ab_event())):
        staged = parse_one(mapping, record)
        raw_id = record["user"]
        assert staged.values["user_pseudonym"] == pseudonymize(raw_id, KEY)
        assert raw_id not in repr(staged.values) and raw_id not in staged.row_key


def test_numeric_user_id_and_missing_user_id():
    assert parse_one(rated(), event(user=1234)).values["user_pseudonym"] == pseudonymize("1234", KEY)
    assert parse_one(rated(), event(user="")).values["user_pseudonym"] is None


def test_row_key_is_the_event_id_prefixed_by_the_log_name():
    assert parse_one(rated(), event(id=17)).row_key == "support-bot:17"
    other = Mapping.model_validate({"name": "sales-bot", "columns": RATED_COLUMNS})
    assert parse_one(other, event(id=17)).row_key == "sales-bot:17"
    assert parse_one(rated(), event(id=17)).values["event_id"] == "17"


def test_without_event_id_the_row_key_is_a_content_hash():
    columns = {k: v for k, v in RATED_COLUMNS.items() if k != "event_id"}
    mapping = Mapping.model_validate({"name": "support-bot", "columns": columns})
    first, again = parse_one(mapping, event()), parse_one(mapping, event())
    assert first.row_key == again.row_key and len(first.row_key) == 64
    assert parse_one(mapping, event(answer="Another reply.")).row_key != first.row_key
    assert parse_one(mapping, event(created_at="2024-05-07T00:00:00Z")).row_key != first.row_key
    assert first.values["event_id"] is None


@pytest.mark.parametrize("raw, expected", [
    ("2024-05-06T09:14:22Z", datetime(2024, 5, 6, 9, 14, 22)),
    ("2024-05-06T11:14:22+02:00", datetime(2024, 5, 6, 9, 14, 22)),
    ("2024-05-06 09:14:22.250", datetime(2024, 5, 6, 9, 14, 22, 250000)),
    ("2024-05-06", datetime(2024, 5, 6)),
    (1714986862, datetime(2024, 5, 6, 9, 14, 22)),
    ("1714986862", datetime(2024, 5, 6, 9, 14, 22)),
    (1714986862.5, datetime(2024, 5, 6, 9, 14, 22, 500000)),
    (1714986862250, datetime(2024, 5, 6, 9, 14, 22, 250000)),
    ("1714986862250", datetime(2024, 5, 6, 9, 14, 22, 250000)),
    (datetime(2024, 5, 6, 11, 14, 22, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 5, 6, 9, 14, 22)),
    (None, None), ("", None),
])
def test_timestamps_become_naive_utc(raw, expected):
    assert parse_one(rated(), event(created_at=raw)).values["event_at"] == expected


@pytest.mark.parametrize("raw", ["05/08/2024 14:03", "yesterday", "2024-13-01", "1e400"])
def test_unparseable_timestamp_is_rejected(raw):
    assert rejected(rated(), event(created_at=raw)).startswith(
        f"unparseable timestamp '{raw}' in column 'created_at'")


def test_metadata_columns_are_text():
    values = parse_one(rated(), event(thread=991.0, model="acme-assist-2024.05")).values
    assert values["conversation_id"] == "991" and values["model_version"] == "acme-assist-2024.05"
    assert values["log_name"] == "support-bot"


# --- prompts ------------------------------------------------------------------

CONVERSATION = [
    {"role": "system", "content": "You are Acme Cloud's support assistant."},
    {"role": "user", "content": "How do I add a custom domain?"},
    {"role": "assistant", "content": "Domains → Add domain, then a CNAME."},
    {"role": "user", "content": "It still shows a certificate warning."},
]


def test_prompt_as_text_list_or_json_text():
    assert parse_one(rated(), event()).values["prompt"] == [
        {"role": "user", "content": "How do I rotate my API key?"}]
    assert parse_one(rated(), event(question=CONVERSATION)).values["prompt"] == CONVERSATION
    as_csv = parse_one(rated(), event(question=json.dumps(CONVERSATION)))  # CSV holds it as text
    assert as_csv.values["prompt"] == CONVERSATION
    as_parquet = parse_one(rated(), event(question=np.array(CONVERSATION, dtype=object)))
    assert as_parquet.values["prompt"] == CONVERSATION


def test_role_aliases_and_text_that_only_looks_like_json():
    aliased = [{"role": "Human", "content": "hi"}, {"role": "bot", "content": "hello"},
               {"role": "prompter", "content": "help"}]
    roles = [m["role"] for m in parse_one(rated(), event(question=aliased)).values["prompt"]]
    assert roles == ["user", "assistant", "user"]
    for text in ("[urgent] my deploy is down", "[1, 2] is my list", "[]"):
        assert parse_one(rated(), event(question=text)).values["prompt"] == [{"role": "user", "content": text}]


@pytest.mark.parametrize("prompt, reason", [
    ("", "column 'question' (prompt) is empty"),
    ("   ", "column 'question' (prompt) is empty"),
    (None, "column 'question' (prompt) is empty"),
    ([], "column 'question' (prompt) is an empty list of messages"),
    (CONVERSATION[:3], "ends with a message from the assistant"),
    ([{"role": "tool", "content": "{}"}, {"role": "user", "content": "hi"}], "has role 'tool'"),
    ([{"role": "user", "content": ""}], "message 1 in column 'question' has no text content"),
    ([{"role": "user"}], "has no text content"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}],
     "system message mid-conversation"),
    ([{"role": "user", "content": "a"}, "b"], "message 2 in column 'question' is not a {role, content} object"),
    ({"text": "hi"}, "should be text or a list of messages"),
])
def test_bad_prompts_are_rejected(prompt, reason):
    assert reason in rejected(rated(), event(question=prompt))


# --- other rejections ---------------------------------------------------------

def test_each_rejection_names_its_column():
    assert rejected(rated(), event(answer="")) == "column 'answer' (completion) is empty"
    assert rejected(rated(), event(answer=42)) == "column 'answer' (completion) should be text, got int"
    assert rejected(rated(), event(id="")) == "column 'id' (event id) is empty"
    record = event()
    del record["answer"]
    assert rejected(rated(), record) == "column 'answer' is missing from this row"
    assert rejected(rated(), event(thread=["x"])) == "column 'thread' should be text or a number, got list"


def test_csv_strings_and_typed_values_agree():
    typed = parse_one(rated(), event(feedback=-1, created_at=1714986862, thread=7, user=55))
    as_csv = parse_one(rated(), event(feedback="-1", created_at="1714986862", thread="7", user="55"))
    for column in ("label", "event_at", "conversation_id", "user_pseudonym", "prompt"):
        assert typed.values[column] == as_csv.values[column]


def test_pandas_empty_cells_are_null():
    values = parse_one(rated(), event(thread=float("nan"), model=np.float64("nan"), created_at=None)).values
    assert values["conversation_id"] is None and values["model_version"] is None and values["event_at"] is None


# --- mapping files ------------------------------------------------------------

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def mapping_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ThumbsError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


GOOD_COLUMNS = "columns:\n  prompt: q\n  completion: a\n  rating: r\n"


def test_mapping_unknown_key(tmp_path):
    message = mapping_error(tmp_path, "name: x\ncolumns:\n  prompt: q\n  complettion: a\n  rating: r\n")
    assert "unknown key 'columns.complettion' (did you mean 'completion'?)" in message
    assert "unknown key 'colums'" in mapping_error(tmp_path, "name: x\ncolums: {}\n" + GOOD_COLUMNS)


def test_mapping_missing_prompt(tmp_path):
    assert "missing key 'columns.prompt'" in mapping_error(tmp_path, "name: x\ncolumns:\n  completion: a\n  rating: r\n")


def test_mapping_without_either_shape(tmp_path):
    message = mapping_error(tmp_path, "name: x\ncolumns:\n  prompt: q\n")
    assert "map either completion + rating" in message and "completion_a + completion_b + winner" in message


def test_mapping_with_half_a_shape_or_both_shapes(tmp_path):
    assert "missing rating" in mapping_error(tmp_path, "name: x\ncolumns:\n  prompt: q\n  completion: a\n")
    assert "missing winner" in mapping_error(
        tmp_path, "name: x\ncolumns:\n  prompt: q\n  completion_a: a\n  completion_b: b\n")
    assert "not both" in mapping_error(tmp_path, "name: x\n" + GOOD_COLUMNS + "  winner: w\n")


def test_mapping_stars_without_thresholds(tmp_path):
    message = mapping_error(tmp_path, "name: x\n" + GOOD_COLUMNS + "rating:\n  kind: stars\n  up_at_least: 4\n")
    assert "needs both up_at_least and down_at_most" in message


def test_mapping_up_not_above_down(tmp_path):
    message = mapping_error(
        tmp_path, "name: x\n" + GOOD_COLUMNS + "rating:\n  kind: stars\n  up_at_least: 3\n  down_at_most: 3\n")
    assert "up_at_least (3) must be greater than down_at_most (3)" in message


def test_mapping_thresholds_outside_stars_or_thumbs(tmp_path):
    assert "apply only to kind: stars" in mapping_error(
        tmp_path, "name: x\n" + GOOD_COLUMNS + "rating:\n  kind: thumbs\n  up_at_least: 4\n")
    assert "rating.up_at_least" in mapping_error(
        tmp_path, "name: x\n" + GOOD_COLUMNS + "rating:\n  kind: stars\n  up_at_least: 7\n  down_at_most: 2\n")
    assert "rating.kind" in mapping_error(tmp_path, "name: x\n" + GOOD_COLUMNS + "rating:\n  kind: emoji\n")


def test_mapping_invalid_yaml(tmp_path):
    message = mapping_error(tmp_path, "name: x\n  columns: q\n")
    assert "invalid YAML at line 2: mapping values are not allowed here" in message


@pytest.mark.parametrize("name", ["Support Bot", "-bot", "bot!", "Bot", ""])
def test_mapping_bad_name(tmp_path, name):
    assert f"name '{name}' should be lowercase" in mapping_error(tmp_path, f"name: '{name}'\n" + GOOD_COLUMNS)


def test_mapping_file_problems(tmp_path):
    assert "is empty" in mapping_error(tmp_path, "# nothing here\n")
    assert "not a list" in mapping_error(tmp_path, "- name: x\n")
    assert "columns.prompt: input should be a valid string" in mapping_error(
        tmp_path, "name: x\ncolumns:\n  prompt: yes\n  completion: a\n  rating: r\n")
    assert "takes no rating section" in mapping_error(
        tmp_path, "name: x\ncolumns:\n  prompt: q\n  completion_a: a\n  completion_b: b\n  winner: w\n"
        "rating:\n  kind: thumbs\n")
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ThumbsError, match=f"^{missing}: mapping file not found$"):
        load_mapping(missing)


def test_required_columns_and_the_header_check(tmp_path):
    mapping = load_mapping(write(tmp_path, "name: x\ncolumns:\n  event_id: id\n  prompt: q\n"
                                           "  completion: a\n  rating: r\n  conversation_id: id\n"))
    assert required_columns(mapping) == ["id", "q", "a", "r"]
    check_columns(mapping, ["id", "q", "a", "r", "extra"], "log.csv")
    with pytest.raises(ThumbsError, match=r"^log.csv: column 'r' named by mapping 'x' is not in the file"):
        check_columns(mapping, ["id", "q", "a"], "log.csv")


# --- the shipped examples -----------------------------------------------------

def outcomes(data: Path, mapping_file: Path, records: list[dict]) -> tuple[Counter, set[str]]:
    mapping = load_mapping(mapping_file)
    check_columns(mapping, records[0].keys(), str(data))
    parse, counts, keys = make_parser(mapping, KEY), Counter(), set()
    for record in records:
        try:
            for staged in parse(record):
                counts["up" if staged.values.get("label") else "pair" if mapping.pairwise else
                       "neutral" if staged.values["label"] is None else "down"] += 1
                keys.add(staged.row_key)
        except RowRejected:
            counts["rejected"] += 1
    return counts, keys


def test_support_bot_example_parses_as_documented():
    data = EXAMPLES / "support-bot.jsonl"
    assert data.stat().st_size < 200_000
    records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    counts, keys = outcomes(data, EXAMPLES / "support-bot.mapping.yaml", records)
    # 200 read: 195 staged (139 up incl. one re-sent event, 56 down), 5 rejected.
    assert len(records) == 200
    assert counts == Counter(up=139, down=56, rejected=5)
    assert len(keys) == 194  # evt_104288 appears twice: one load, one duplicate
    assert not any(r["user"] in key for r in records for key in keys)


def test_ab_test_example_parses_as_documented():
    data = EXAMPLES / "ab-test.csv"
    assert data.stat().st_size < 200_000
    with data.open(encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    counts, keys = outcomes(data, EXAMPLES / "ab-test.mapping.yaml", records)
    assert len(records) == 60
    assert counts == Counter(pair=55, rejected=5)  # 3 ties, 1 identical pair, 1 empty reply
    assert len(keys) == 55
